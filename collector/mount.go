package collector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ensureMounts mounts tracefs and bpffs when they are missing: tracepoint
// attachment reads tracefs, and a sensor in a fresh container or a minimal
// host often has neither.
func ensureMounts(tracefs, bpffs string) error {
	if _, err := os.Stat(filepath.Join(tracefs, "events")); err != nil {
		if err := mountFS(tracefs, "tracefs", unix.TRACEFS_MAGIC); err != nil {
			return fmt.Errorf("mount tracefs: %w", err)
		}
	}
	if err := mountFS(bpffs, "bpf", unix.BPF_FS_MAGIC); err != nil {
		return fmt.Errorf("mount bpffs: %w", err)
	}
	return nil
}

func mountFS(dir, fstype string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && int64(st.Type) == magic {
		return nil
	} else if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return err
	}
	return nil
}
