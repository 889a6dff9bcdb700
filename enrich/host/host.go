// Package host describes the machine the sensor runs on: hostname, kernel
// release, boot id, OS and architecture, read from the host's /proc and
// /etc so a containerised sensor reports the host, not its own image.
package host

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	vigilv1 "github.com/vigilsec/vigil/proto/vigil/v1"
)

// Collect reads the host description. procRoot is the host's /proc (for
// example /host/proc in a container) and hostRoot the host's root file
// system for /etc/os-release. Missing files leave fields empty.
func Collect(procRoot, hostRoot string) *vigilv1.Host {
	h := &vigilv1.Host{
		Hostname: readTrim(filepath.Join(procRoot, "sys/kernel/hostname")),
		Kernel:   readTrim(filepath.Join(procRoot, "sys/kernel/osrelease")),
		BootId:   readTrim(filepath.Join(procRoot, "sys/kernel/random/boot_id")),
		Os:       osName(hostRoot),
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		h.Arch = unix.ByteSliceToString(u.Machine[:])
		if h.Kernel == "" {
			h.Kernel = unix.ByteSliceToString(u.Release[:])
		}
	}
	if h.Hostname == "" {
		h.Hostname, _ = os.Hostname()
	}
	return h
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// osName is PRETTY_NAME from os-release (etc, then usr/lib), else NAME.
func osName(hostRoot string) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(hostRoot, p))
		if err != nil {
			continue
		}
		return ParseOSRelease(b)
	}
	return ""
}

// ParseOSRelease returns PRETTY_NAME (else NAME VERSION_ID) from the
// contents of an os-release file.
func ParseOSRelease(b []byte) string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		vals[k] = strings.Trim(v, `"'`)
	}
	if v := vals["PRETTY_NAME"]; v != "" {
		return v
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION_ID"])
}
