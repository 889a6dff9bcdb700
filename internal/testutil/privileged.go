// Package testutil holds helpers shared by Vigil's tests: privilege checks,
// waiting for events, and starting real services (containerd, PostgreSQL).
package testutil

import (
	"os"
	"testing"
)

// RequirePrivileged skips the test when it cannot run with root and BPF, and
// fails it instead when VIGIL_REQUIRE_PRIVILEGED=1 (as in CI), so that a
// privileged test can never pass by skipping where it must run.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	SkipOrFail(t, "needs root for BPF and containers (run as root, or set VIGIL_REQUIRE_PRIVILEGED=0)")
}

// SkipOrFail skips with reason, or fails with it when privileged tests are
// required.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("VIGIL_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("VIGIL_REQUIRE_PRIVILEGED=1 but this test would skip: %s", reason)
	}
	t.Skip(reason)
}
