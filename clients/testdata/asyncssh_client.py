#!/usr/bin/python3
"""AsyncSSH through a Postern bastion, on one connection: parallel execs,
then sequential execs, then an SFTP put and get. Prints one JSON object
with the counts; the Go test (asyncssh_test.go) asserts them.

Run with Debian's /usr/bin/python3 (python3-asyncssh 2.10)."""

import argparse
import asyncio
import json
import os
import sys
import time

import asyncssh


async def run_checked(conn, cmd, want, errors):
    """Runs cmd; counts a failure unless it exits 0 printing exactly want."""
    try:
        r = await conn.run(cmd, check=False)
    except (OSError, asyncssh.Error) as e:
        errors.append(f"{cmd}: {e!r}")
        return False
    if r.exit_status != 0 or r.stdout != want:
        errors.append(f"{cmd}: exit {r.exit_status} stdout {r.stdout!r} stderr {r.stderr!r}")
        return False
    return True


async def parallel(conn, workers, per, errors):
    """workers tasks at once, each running per execs one after another."""
    async def worker(w):
        ok = 0
        for i in range(per):
            ok += await run_checked(conn, f"echo p{w}-{i}", f"p{w}-{i}\n", errors)
        return ok
    return sum(await asyncio.gather(*(worker(w) for w in range(workers))))


async def sequential(conn, n, errors):
    ok = 0
    for i in range(n):
        ok += await run_checked(conn, f"echo s-{i}", f"s-{i}\n", errors)
    return ok


async def sftp_round_trip(conn, local_dir, remote_dir):
    """Puts 1 MiB of random bytes and gets it back; returns "ok" or why not."""
    data = os.urandom(1 << 20)
    src = os.path.join(local_dir, "sftp-src")
    back = os.path.join(local_dir, "sftp-back")
    with open(src, "wb") as f:
        f.write(data)
    remote = os.path.join(remote_dir, "sftp-up")
    async with conn.start_sftp_client() as sftp:
        await sftp.put(src, remote)
        await sftp.get(remote, back)
    with open(remote, "rb") as f:
        if f.read() != data:
            return "uploaded file differs"
    with open(back, "rb") as f:
        if f.read() != data:
            return "downloaded file differs"
    return "ok"


async def main(a):
    key = asyncssh.read_private_key(a.key)
    cert = asyncssh.read_certificate(a.cert)
    res = {"errors": []}
    errors = []
    async with asyncssh.connect(
        "127.0.0.1", a.port, username=a.user, client_keys=[(key, cert)],
        known_hosts=a.known_hosts, agent_path=None, config=None,
    ) as conn:
        res["cipher"] = conn.get_extra_info("send_cipher")
        t0 = time.monotonic()
        res["parallel_ok"] = await parallel(conn, a.workers, a.per, errors)
        res["parallel_seconds"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        res["sequential_ok"] = await sequential(conn, a.sequential, errors)
        res["sequential_seconds"] = round(time.monotonic() - t0, 2)
        res["sftp"] = await sftp_round_trip(conn, a.local_dir, a.remote_dir)
    res["errors"] = errors[:10]
    res["error_count"] = len(errors)
    return res


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--known-hosts", required=True)
    p.add_argument("--local-dir", required=True)
    p.add_argument("--remote-dir", required=True)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--per", type=int, default=25)
    p.add_argument("--sequential", type=int, default=500)
    p.add_argument("--timeout", type=float, default=120)
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    try:
        result = asyncio.run(asyncio.wait_for(main(args), args.timeout))
    except asyncio.TimeoutError:
        result = {"fatal": f"timed out after {args.timeout} s"}
    except (OSError, asyncssh.Error) as e:
        result = {"fatal": repr(e)}
    json.dump(result, sys.stdout)
    print()
