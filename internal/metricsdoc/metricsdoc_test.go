package metricsdoc

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRecorderDocumentsRegisteredMetrics(t *testing.T) {
	r := NewRecorder(prometheus.NewRegistry())
	r.MustRegister(
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_demo_batches_total", Help: `Batches by "result".`}, []string{"result"}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_demo_streams", Help: "Streams open."}),
		prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_other", Help: "Not ours."}),
	)
	got := r.Markdown("Demo", "vigil_")
	for _, want := range []string{
		"| `vigil_demo_batches_total` | result | Batches by \"result\". |",
		"| `vigil_demo_streams` |  | Streams open. |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "go_other") {
		t.Errorf("prefix filter let go_other through:\n%s", got)
	}
	if strings.Index(got, "batches_total") > strings.Index(got, "streams") {
		t.Errorf("not sorted:\n%s", got)
	}
}
