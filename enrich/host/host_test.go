package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "PRETTY_NAME is preferred", in: "NAME=\"Amazon Linux\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241010\"\n", want: "Amazon Linux 2023.6.20241010"},
		{name: "NAME and VERSION_ID stand in when PRETTY_NAME is missing", in: "NAME=Bottlerocket\nVERSION_ID=1.20.0\n", want: "Bottlerocket 1.20.0"},
		{name: "comments and blank lines are ignored", in: "# generated\n\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\n", want: "Debian GNU/Linux 12 (bookworm)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseOSRelease([]byte(tt.in)); got != tt.want {
				t.Fatalf("ParseOSRelease = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	proc, root := t.TempDir(), t.TempDir()
	files := map[string]string{
		filepath.Join(proc, "sys/kernel/hostname"):       "ip-10-0-2-61\n",
		filepath.Join(proc, "sys/kernel/osrelease"):      "6.1.112-124.190.amzn2023.x86_64\n",
		filepath.Join(proc, "sys/kernel/random/boot_id"): "6f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
		filepath.Join(root, "etc/os-release"):            "PRETTY_NAME=\"Amazon Linux 2023\"\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name           string
		proc, root     string
		wantHost, want string
	}{
		{name: "the host's /proc and /etc mounted elsewhere are read, not the sensor's own", proc: proc, root: root, wantHost: "ip-10-0-2-61", want: "Amazon Linux 2023"},
		{name: "the real /proc gives a hostname, kernel and boot id", proc: "/proc", root: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Collect(tt.proc, tt.root)
			if h.Hostname == "" || h.Kernel == "" || h.BootId == "" || h.Arch == "" {
				t.Fatalf("Collect = %v, want every local field", h)
			}
			if tt.wantHost != "" && (h.Hostname != tt.wantHost || h.Os != tt.want ||
				h.Kernel != "6.1.112-124.190.amzn2023.x86_64" || h.BootId != "6f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0") {
				t.Fatalf("Collect = %v", h)
			}
		})
	}
}
