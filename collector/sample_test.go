package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/collector/probes"
)

type rawHdr = probes.VigilRecHdr

// saveSample writes the raw record of an integration test case to
// testdata/records when VIGIL_UPDATE_SAMPLES=1: that is how the decoder's
// samples were captured (see testdata/records/README.md).
func saveSample(t *testing.T, name string, raw []byte) {
	t.Helper()
	if os.Getenv("VIGIL_UPDATE_SAMPLES") != "1" || raw == nil {
		return
	}
	file := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	if err := os.WriteFile(filepath.Join("testdata", "records", file+".bin"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
