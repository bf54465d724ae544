package bastion

import "errors"

// newRsyncTransfer: placeholder until the rsync stream validator lands.
func newRsyncTransfer(env *transferEnv, command string) (transfer, error) {
	return nil, errors.New("rsync cannot be validated yet")
}
