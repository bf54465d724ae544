package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxScrape caps a scraped body.
const maxScrape = 4 << 20

// Samples are scraped values by series: `name` for a series without
// labels, `name{a="x",b="y"}` (labels sorted) otherwise; a histogram
// gives name_count and name_sum.
type Samples map[string]float64

// Sum adds the series of metric name over every label set.
func (s Samples) Sum(name string) float64 {
	var t float64
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

// Scrape reads url (a /metrics endpoint in Prometheus' text format) with
// c. The benchmark's soak phase and the tests read the bastion with it.
func Scrape(ctx context.Context, c *http.Client, url string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrape))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	s := Samples{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := seriesKey(name, m.GetLabel())
			switch {
			case m.Counter != nil:
				s[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				s[key] = m.Gauge.GetValue()
			case m.Untyped != nil:
				s[key] = m.Untyped.GetValue()
			case m.Histogram != nil:
				s[seriesKey(name+"_count", m.GetLabel())] = float64(m.Histogram.GetSampleCount())
				s[seriesKey(name+"_sum", m.GetLabel())] = m.Histogram.GetSampleSum()
			}
		}
	}
	return s, nil
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	slices.Sort(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}
