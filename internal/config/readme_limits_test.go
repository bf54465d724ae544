package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
)

// README.md's "Connection limits" shows the limits section with the
// defaults and a table of its keys: the block parses to the defaults, and
// each table row's default is the value the block gives that key.
func TestREADMELimitsSection(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### Connection limits")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, table, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 || !strings.HasPrefix(block, "limits:\n") {
		t.Fatalf("README.md has no limits block under Connection limits:\n%.200s", rest)
	}
	c, err := config.Parse("postern.yaml", []byte(minimal+block))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.Limits{HandshakeTimeout: bastion.DefaultHandshakeTimeout, Limits: bastion.DefaultLimits}); !reflect.DeepEqual(c.Limits, want) {
		t.Fatalf("README block gives %+v, not the defaults %+v", c.Limits, want)
	}
	values := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		values[k] = strings.Trim(v, `"`)
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			if rows > 0 {
				break
			}
			continue
		}
		rows++
		key, def := strings.Trim(strings.TrimSpace(cells[1]), "`"), strings.Trim(strings.TrimSpace(cells[2]), "`")
		if values[key] != def {
			t.Errorf("table row %s says default %q, the block %q", key, def, values[key])
		}
	}
	if rows != len(values) {
		t.Errorf("the table has %d rows, the block %d keys", rows, len(values))
	}
}
