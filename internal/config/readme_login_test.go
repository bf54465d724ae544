package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// TestREADMEProviderExamples parses each login: example of README.md's
// "Single sign-on providers" section as serve and config check would (the
// TLS files it names are swapped for real ones), so that no example
// carries a key or value the bastion refuses, and checks the identity
// claim and device setting each provider's text relies on.
func TestREADMEProviderExamples(t *testing.T) {
	t.Parallel()
	want := map[string]string{ // provider heading: identity_claim
		"Keycloak":                           "email",
		"Okta":                               "preferred_username",
		"Microsoft Entra ID":                 "preferred_username",
		"Google (Workspace, Cloud Identity)": "email",
		"Dex":                                "email",
	}
	examples := readmeLoginExamples(t)
	if len(examples) != len(want) {
		t.Fatalf("README.md shows login: examples for %d providers, want %d (%v)", len(examples), len(want), want)
	}
	dir := t.TempDir()
	writeTLS(t, dir)
	paths := strings.NewReplacer("/etc/postern/tls/fullchain.pem", "cert.pem", "/etc/postern/tls/privkey.pem", "key.pem")
	for provider, yaml := range examples {
		c, err := config.Parse(filepath.Join(dir, "postern.yaml"), []byte(minimal+paths.Replace(yaml)))
		if err != nil {
			t.Errorf("%s: README.md's login example is refused: %v", provider, err)
			continue
		}
		if c.Login == nil {
			t.Errorf("%s: the example has no login section", provider)
			continue
		}
		id, ok := want[provider]
		switch {
		case !ok:
			t.Errorf("README.md shows a login example under %q, which this test does not know", provider)
		case c.Login.IdentityClaim != id:
			t.Errorf("%s: identity_claim %q, the README's text relies on %q", provider, c.Login.IdentityClaim, id)
		case provider == "Okta" && c.Login.RedirectPort == 0:
			t.Errorf("Okta: the example sets no redirect_port; Okta matches the redirect's port")
		case strings.HasPrefix(provider, "Google"):
			if c.Login.Device || c.Login.PublicClientSecret == "" {
				t.Errorf("Google: the example must send the Desktop app's secret and leave the device grant off (its tokens are another client's)")
			}
		case !c.Login.Device:
			t.Errorf("%s: the example does not turn the device grant on", provider)
		}
	}
}

// readmeLoginExamples returns, per provider heading of README.md's
// "Single sign-on providers" section, its yaml code block that starts
// with login:.
func readmeLoginExamples(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Single sign-on providers (postern login)\n")
	if !ok {
		t.Fatal(`README.md has no "## Single sign-on providers (postern login)" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]string{}
	for _, sub := range strings.Split(section, "\n### ")[1:] {
		heading, body, _ := strings.Cut(sub, "\n")
		for _, block := range strings.Split(body, "```yaml\n")[1:] {
			block, _, ok := strings.Cut(block, "```")
			if !ok {
				t.Fatalf("%s: a yaml block is not closed", heading)
			}
			if strings.HasPrefix(block, "login:\n") {
				if _, dup := out[heading]; dup {
					t.Fatalf("%s: two login examples", heading)
				}
				out[heading] = block
			}
		}
	}
	return out
}
