package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/metrics"
)

// metricName finds the metric names an expression uses: identifiers of
// the families the registry exports, as PromQL writes them.
var metricName = regexp.MustCompile(`\b(?:postern|go|process)_[a-zA-Z0-9_]+`)

// TestDashboardNamesExportedMetrics: every expression of the example
// Grafana dashboard (and its job variable's query) names only metrics the
// registry exports, so a rename here breaks this test, not the operator's
// dashboard; and each postern_ metric is on the dashboard.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.ApprovalsPending(func() int { return 0 })
	m.Handshake(0, true) // a histogram with no observation still exports its families
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				exported[f.GetName()+suffix] = true
			}
		}
	}
	raw, err := os.ReadFile("../../examples/grafana-postern.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("examples/grafana-postern.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && strings.Contains(q, "(") {
			exprs = append(exprs, q)
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("expression names no metric: %s", e)
		}
		for _, n := range names {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
			if !exported[n] {
				t.Errorf("the dashboard uses %s, which the registry does not export: %s", n, e)
			}
		}
	}
	for n := range exported {
		if strings.HasPrefix(n, "postern_") && !strings.HasSuffix(n, "_bucket") && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_sum") && !used[n] {
			t.Errorf("%s is exported but not on the dashboard", n)
		}
	}
	if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "histogram_quantile") }) {
		t.Error("no latency quantile on the dashboard")
	}
}
