#!/usr/bin/env bash
# Installs the Debian packages Postern's tests need: a real OpenSSH server
# and client, rsync, asciinema, PostgreSQL, and the third-party SSH clients
# the client matrix (clients/) runs against the bastion: PuTTY's tools,
# AsyncSSH, paramiko, Ansible, git and Dropbear's dbclient. Safe to run
# again: it installs only what is missing. Needs root (or sudo) when
# something is missing.
set -euo pipefail
pkgs=(openssh-server openssh-client openssh-sftp-server rsync asciinema postgresql-15 postgresql-client-15
	putty-tools python3-asyncssh python3-paramiko ansible-core git dropbear-bin)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
