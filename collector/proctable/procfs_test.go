package proctable

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilsec/vigil/internal/testutil/elf32"
)

func TestParseStat(t *testing.T) {
	tail := "S 1 100 100 34816 100 4194560 0 0 0 0 1 2 0 0 20 0 1 0 12345 1000 100 18446744073709551615"
	cases := []struct {
		name, line string
		comm       string
		ppid, sid  uint32
		tty        uint32
		start      uint64
		err        bool
	}{
		{"a plain comm parses", "42 (bash) " + tail, "bash", 1, 100, 34816, 12345, false},
		{"a comm with spaces and parentheses parses", "42 (a) b (c) " + tail, "a) b (c", 1, 100, 34816, 12345, false},
		{"a comm of only a paren parses", "42 ()) " + tail, ")", 1, 100, 34816, 12345, false},
		{"a line without comm is refused", "42 bash " + tail, "", 0, 0, 0, 0, true},
		{"a short line is refused", "42 (bash) S 1 2", "", 0, 0, 0, 0, true},
		{"a non-number start is refused", "42 (bash) S 1 100 100 34816 100 4194560 0 0 0 0 1 2 0 0 20 0 1 0 x 1", "", 0, 0, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var info procInfo
			err := parseStat([]byte(c.line), &info)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if c.err {
				return
			}
			got := fmt.Sprint(info.comm, info.ppid, info.sid, info.tty, info.startTicks)
			want := fmt.Sprint(c.comm, c.ppid, c.sid, c.tty, c.start)
			if got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestCleanExeLink(t *testing.T) {
	cases := []struct {
		name, link, path string
		fileless         bool
	}{
		{"a normal path is kept", "/usr/bin/bash", "/usr/bin/bash", false},
		{"a deleted file is fileless without the suffix", "/tmp/x (deleted)", "/tmp/x", true},
		{"a memfd is fileless", "/memfd:payload (deleted)", "/memfd:payload", true},
		{"a path that merely mentions deleted is kept", "/opt/(deleted)/x", "/opt/(deleted)/x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := cleanExeLink(c.link)
			if p != c.path || f != c.fileless {
				t.Errorf("cleanExeLink(%q) = %q, %v; want %q, %v", c.link, p, f, c.path, c.fileless)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"a plain path is kept", "/var/lib/x", "/var/lib/x"},
		{"an escaped space is decoded", `/mnt/a\040b`, "/mnt/a b"},
		{"an escaped backslash is decoded", `/mnt/a\134b`, `/mnt/a\b`},
		{"a trailing backslash is kept", `/mnt/a\`, `/mnt/a\`},
		{"a short escape at the end is kept", `/mnt/a\04`, `/mnt/a\04`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := unescapeMount(c.in); got != c.want {
				t.Errorf("unescapeMount(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestIsELF32(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		path string
		want bool
	}{
		{"an i386 executable", write("i386", elf32.ExitProgram(0)), true},
		{"this 64-bit test binary", self, false},
		{"a script", write("script", []byte("#!/bin/sh\nexit 0\n")), false},
		{"a file shorter than the header", write("short", []byte("\x7fEL")), false},
		{"a missing file", filepath.Join(dir, "missing"), false},
	} {
		if got := isELF32(c.path); got != c.want {
			t.Errorf("%s: isELF32 = %v, want %v", c.name, got, c.want)
		}
	}
}
