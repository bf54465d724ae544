// Package clients holds only tests: the client matrix of issue 13. Each
// test runs a third-party SSH client (OpenSSH with an agent and connection
// sharing, PuTTY's plink/pscp/psftp, AsyncSSH, paramiko, git, Ansible,
// Dropbear's dbclient) against a Postern bastion in the test binary that
// proxies to a real OpenSSH sshd on loopback, and checks what works and
// how what does not is refused. It is a package of its own so that
// go test ./... runs it beside the bastion package's end-to-end tests.
//
// The clients come from Debian packages (scripts/deps.sh installs them);
// a missing one skips its test locally and fails it in CI.
package clients
