package findings

import (
	"strings"
	"testing"

	"github.com/vigilsec/vigil/detect"
	"github.com/vigilsec/vigil/rules"
)

// TestEveryCatalogueTypeHasATitle checks each finding type the built-in
// rules raise has its few words in typeTitles, so no finding is titled by a
// rule name alone.
func TestEveryCatalogueTypeHasATitle(t *testing.T) {
	rs, errs := detect.LoadRules(rules.FS, "")
	if len(errs) > 0 {
		t.Fatalf("catalogue: %v", errs)
	}
	seen := map[string]bool{}
	for _, r := range rs.Rules() {
		typ := r.FindingType
		_, family, ok := strings.Cut(typ, ":")
		if !ok || seen[typ] {
			continue
		}
		seen[typ] = true
		if typeTitles[family] == "" {
			t.Errorf("finding type %s (rule %q) has no title in typeTitles", typ, r.Name)
		}
	}
	if len(seen) < 40 {
		t.Fatalf("only %d finding types in the catalogue", len(seen))
	}
}
