// Package metricsdoc renders the list of a binary's Prometheus metrics from
// the collectors its components register, so docs/metrics.md is generated
// from the code and cannot drift from it.
package metricsdoc

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Recorder is a prometheus.Registerer that remembers the descriptors of
// everything registered through it before passing it on.
type Recorder struct {
	prometheus.Registerer
	metrics map[string]Metric
}

// Metric is one metric as documented.
type Metric struct {
	Name   string
	Help   string
	Labels []string
}

// NewRecorder wraps reg.
func NewRecorder(reg prometheus.Registerer) *Recorder {
	return &Recorder{Registerer: reg, metrics: map[string]Metric{}}
}

// Register records c's descriptors and registers it.
func (r *Recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m, ok := parseDesc(d.String()); ok {
			r.metrics[m.Name] = m
		}
	}
	return r.Registerer.Register(c)
}

// MustRegister records and registers cs, panicking on error as the
// prometheus convention is.
func (r *Recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// descPattern reads prometheus.Desc's String form; the library exposes a
// descriptor's name, help and labels no other way.
var descPattern = regexp.MustCompile(`fqName: "([^"]*)", help: "((?:[^"\\]|\\.)*)",(?: unit: "[^"]*",)? constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}`)

func parseDesc(s string) (Metric, bool) {
	m := descPattern.FindStringSubmatch(s)
	if m == nil {
		return Metric{}, false
	}
	out := Metric{Name: m[1], Help: strings.ReplaceAll(m[2], `\"`, `"`)}
	for _, l := range strings.Split(m[3], ",") {
		if l = strings.TrimSpace(l); l != "" {
			out.Labels = append(out.Labels, l)
		}
	}
	return out, true
}

// Markdown renders the recorded metrics whose names start with prefix as a
// table, sorted by name.
func (r *Recorder) Markdown(title, prefix string) string {
	var names []string
	for n := range r.metrics {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n| metric | labels | meaning |\n| --- | --- | --- |\n", title)
	for _, n := range names {
		m := r.metrics[n]
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, strings.Join(m.Labels, ", "), strings.ReplaceAll(m.Help, "|", `\|`))
	}
	return b.String()
}
