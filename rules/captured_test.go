package rules_test

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// TestCapturedEvents runs events the real sensor captured (see
// testdata/captured/README.md) through the catalogue: each must fire
// exactly the rules listed, and nothing else of Medium severity or more.
func TestCapturedEvents(t *testing.T) {
	rs := loadCatalogue(t, configMap)
	cases := []struct {
		name, file string
		want       []string
	}{
		{"a renamed shell execed with a socket on its standard streams is a reverse shell (named like a kernel thread, too)",
			"a-reverse-shell-dups-a-socket-onto-stdio-and-execs-a-renamed-shell", []string{"Reverse shell with network standard streams",
				"Program disguised as a kernel thread"}},
		{"PTRACE_ATTACH by the test binary is process injection",
			"ptrace-attach-names-the-request-and-the-target", []string{"Process injection through ptrace"}},
		{"process_vm_writev into another process is injection",
			"process-vm-writev-names-the-target-and-the-bytes-written", []string{"Process memory written with process_vm_writev"}},
		{"execveat of a memfd is fileless execution",
			"execveat-of-a-memfd-with-at-empty-path-shows-up-as-an-exec-from-a-memfd", []string{"Fileless execution"}},
		{"an exec with LD_PRELOAD naming an unknown library is flagged",
			"ld-preload-and-ld-library-path-are-read-at-exec", []string{"LD_PRELOAD set for a program"}},
		{"mprotect to read-execute (what JITs do) raises nothing",
			"mprotect-adding-prot-exec-shows-the-protection", nil},
		{"an AF_PACKET socket is a raw socket",
			"a-raw-packet-socket-shows-its-family", []string{"Raw packet socket opened"}},
		{"the userfaultfd syscall is userfaultfd usage",
			"userfaultfd-shows-up-as-a-syscall", []string{"Userfaultfd used"}},
		{"a read-only open of /dev/userfaultfd is userfaultfd usage",
			"an-open-of--dev-userfaultfd-is-a-userfaultfd-event-too", []string{"Userfaultfd used"}},
		{"a DNS query for an ordinary name raises nothing",
			"a-dns-query-by-plain-sendto-to-127-0-0-1-53-shows-the-name", nil},
		{"a failed mount on the host is not a container mount",
			"a-failed-mount-of--etc-on--tmp-shows-up", nil},
		{"chmod 0640 through a dirfd raises nothing",
			"chmod-through-a-dirfd-shows-the-absolute-path-and-mode", nil},
		{"a rename in a temporary directory raises nothing",
			"a-rename-shows-both-paths", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "captured", c.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ev vigilv1.Event
			if err := protojson.Unmarshal(b, &ev); err != nil {
				t.Fatalf("decode %s: %v", c.file, err)
			}
			got := map[string]bool{}
			for _, a := range run(rs, evs(&ev)) {
				got[a.Rule.Name] = true
				if a.Rule.Severity >= 5 && !contains(c.want, a.Rule.Name) {
					t.Errorf("unexpected %s (%s): %s", a.Rule.Name, a.Rule.FindingType, a.Output)
				}
			}
			for _, w := range c.want {
				if !got[w] {
					t.Errorf("%q did not fire", w)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
