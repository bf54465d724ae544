package bastion

import "syscall"

const haveQuickAck = true

// setQuickAck leaves delayed-acknowledgement mode on the socket fd and
// acknowledges anything already received (tcp(7), TCP_QUICKACK).
func setQuickAck(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
}
