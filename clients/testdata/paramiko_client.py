#!/usr/bin/python3
"""paramiko through a Postern bastion: connect with an OpenSSH user
certificate, check the bastion's host key, run some execs and an SFTP put
and get. Prints one JSON object; the Go test (paramiko_test.go) asserts it.

Run with Debian's /usr/bin/python3 (python3-paramiko 2.12, which has no
AES-GCM: it needs aes128-ctr or aes256-ctr in the bastion's ciphers)."""

import argparse
import json
import os
import socket
import sys
import warnings

warnings.simplefilter("ignore")  # cryptography's deprecation notices

import paramiko  # noqa: E402


def run(t, cmd):
    """Runs cmd on a new session channel; returns (exit status, stdout)."""
    chan = t.open_session()
    try:
        chan.exec_command(cmd)
        out = b""
        while True:
            data = chan.recv(32768)
            if not data:
                break
            out += data
        return chan.recv_exit_status(), out.decode()
    finally:
        chan.close()


def sftp_round_trip(t, local_dir, remote_dir):
    data = os.urandom(1 << 20)
    src = os.path.join(local_dir, "paramiko-src")
    back = os.path.join(local_dir, "paramiko-back")
    remote = os.path.join(remote_dir, "paramiko-up")
    with open(src, "wb") as f:
        f.write(data)
    sftp = paramiko.SFTPClient.from_transport(t)
    try:
        sftp.put(src, remote)
        sftp.get(remote, back)
    finally:
        sftp.close()
    with open(back, "rb") as f:
        return "ok" if f.read() == data else "downloaded file differs"


def session(a):
    key = paramiko.Ed25519Key.from_private_key_file(a.key)
    key.load_certificate(a.cert)
    sock = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
    t = paramiko.Transport(sock)
    t.banner_timeout = t.auth_timeout = a.timeout
    try:
        try:
            t.start_client(timeout=a.timeout)
        except (paramiko.SSHException, EOFError) as e:
            return {"connected": False, "error": str(e)}
        hk = t.get_remote_server_key()
        if f"{hk.get_name()} {hk.get_base64()}" != a.host_key:
            return {"connected": True, "error": "unexpected host key " + hk.get_base64()}
        t.auth_publickey(a.user, key)
        res = {"connected": True, "cipher": t.remote_cipher, "execs_ok": 0, "errors": []}
        for i in range(a.execs):
            status, out = run(t, f"echo paramiko-{i}; exit 3")
            if status == 3 and out == f"paramiko-{i}\n":
                res["execs_ok"] += 1
            else:
                res["errors"].append(f"exec {i}: exit {status} stdout {out!r}")
        res["sftp"] = sftp_round_trip(t, a.local_dir, a.remote_dir)
        return res
    finally:
        t.close()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--host-key", required=True, help='"TYPE BASE64" of the bastion')
    p.add_argument("--local-dir", required=True)
    p.add_argument("--remote-dir", required=True)
    p.add_argument("--execs", type=int, default=10)
    p.add_argument("--timeout", type=float, default=60)
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    try:
        result = session(args)
    except (OSError, paramiko.SSHException) as e:
        result = {"fatal": repr(e)}
    json.dump(result, sys.stdout)
    print()
