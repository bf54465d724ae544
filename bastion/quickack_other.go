//go:build !linux

package bastion

const haveQuickAck = false

func setQuickAck(uintptr) {}
