package bastion

import "golang.org/x/crypto/ssh"

// track registers ch, a channel open to the client, until untrack. The
// first one ends the connection's setup phase (quickack.go).
func (c *conn) track(ch ssh.Channel) {
	c.acks.end()
	c.mu.Lock()
	c.channels[ch] = struct{}{}
	c.mu.Unlock()
}

// untrack removes ch; the last one out wakes waitChannels.
func (c *conn) untrack(ch ssh.Channel) {
	c.mu.Lock()
	delete(c.channels, ch)
	if len(c.channels) == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.mu.Unlock()
}
