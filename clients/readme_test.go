package clients

import (
	"os"
	"strings"
	"testing"
)

// README.md's Clients section quotes the config line and the messages
// these tests check; it must quote them as the tests have them (line
// breaks in README.md count as spaces).
func TestREADMEQuotesTheTests(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	for _, s := range []string{ctrCiphers, paramikoRefused, dropbearKex, dropbearNoCert} {
		if !strings.Contains(text, s) {
			t.Errorf("README.md does not quote %q", s)
		}
	}
}
