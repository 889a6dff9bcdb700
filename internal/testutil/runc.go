package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// RuncContainer is a container started straight from an OCI bundle with
// runc, for tests that run Vigil with exactly the privileges, mounts and
// user a deployment artefact gives it.
type RuncContainer struct {
	// Exited is closed when the container's runc process has exited.
	Exited <-chan struct{}

	cmd  *exec.Cmd
	stop func()
}

// StartBundle writes spec as bundle/config.json and starts it with runc in
// the background, stdout and stderr going to the given writers. The
// container is killed and deleted by Stop, and at the end of the test at the
// latest.
func StartBundle(t testing.TB, runc, bundle, idPrefix string, spec *specs.Spec, stdout, stderr io.Writer) *RuncContainer {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("OCI spec: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%s-%d", idPrefix, time.Now().UnixNano())
	state := t.TempDir()
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
		})
	}
	t.Cleanup(stop)
	return &RuncContainer{Exited: exited, cmd: cmd, stop: stop}
}

// Stop kills and deletes the container; calling it again does nothing.
func (c *RuncContainer) Stop() { c.stop() }

// ExitState describes how the container's runc process ended; call it only
// after Exited is closed.
func (c *RuncContainer) ExitState() string { return c.cmd.ProcessState.String() }
