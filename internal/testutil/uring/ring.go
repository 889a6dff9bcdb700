// Package uring submits single operations through an io_uring, as
// programs that avoid system calls do, for tests and the e2e attacker. It is
// written against the kernel interface directly (io_uring_setup(2),
// io_uring_enter(2) and the mapped rings) because it needs only a few
// operations and no cgo.
package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes (enum io_uring_op in linux/io_uring.h).
const (
	opConnect  = 16
	opOpenat   = 18
	opRenameat = 35
	opUnlinkat = 36
)

const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// Ring is one io_uring with its three mappings.
type Ring struct {
	fd           int
	p            params
	sq, cq, sqes []byte
}

// New sets up a ring of 4 entries.
func New() (*Ring, error) {
	r := &Ring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	var err error
	if r.sq, err = unix.Mmap(r.fd, offSQRing, int(r.p.sqOff.array+r.p.sqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("map the submission ring: %w", err)
	}
	if r.cq, err = unix.Mmap(r.fd, offCQRing, int(r.p.cqOff.cqes+r.p.cqEntries*16), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("map the completion ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(r.p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("map the submission entries: %w", err)
	}
	return r, nil
}

// FD is the ring's descriptor.
func (r *Ring) FD() int { return r.fd }

// Close unmaps the rings and closes the ring's descriptor.
func (r *Ring) Close() error {
	for _, m := range [][]byte{r.sq, r.cq, r.sqes} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	return unix.Close(r.fd)
}

func u32(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// run submits e and waits for its completion; it returns the completion's
// result (a descriptor, 0, or a negative errno).
func (r *Ring) run(e sqe) (int32, error) {
	tail := atomic.LoadUint32(u32(r.sq, r.p.sqOff.tail))
	idx := tail & atomic.LoadUint32(u32(r.sq, r.p.sqOff.ringMask))
	*(*sqe)(unsafe.Pointer(&r.sqes[uintptr(idx)*unsafe.Sizeof(sqe{})])) = e
	*u32(r.sq, r.p.sqOff.array+idx*4) = idx
	atomic.StoreUint32(u32(r.sq, r.p.sqOff.tail), tail+1)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 1, enterGetEvents, 0, 0); errno != 0 {
		return 0, fmt.Errorf("io_uring_enter: %w", errno)
	}
	head := atomic.LoadUint32(u32(r.cq, r.p.cqOff.head))
	if head == atomic.LoadUint32(u32(r.cq, r.p.cqOff.tail)) {
		return 0, errors.New("io_uring: no completion")
	}
	at := r.p.cqOff.cqes + (head&atomic.LoadUint32(u32(r.cq, r.p.cqOff.ringMask)))*16
	res := *(*int32)(unsafe.Pointer(&r.cq[at+8]))
	atomic.StoreUint32(u32(r.cq, r.p.cqOff.head), head+1)
	return res, nil
}

// Openat opens path relative to the working directory through the ring and
// returns the new descriptor.
func (r *Ring) Openat(path string, flags int, mode uint32) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	res, err := r.run(sqe{opcode: opOpenat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(p))), len: mode, opFlags: uint32(flags)})
	runtime.KeepAlive(p)
	if err := result(res, err); err != nil {
		return -1, err
	}
	return int(res), nil
}

// ConnectInet4 connects the socket fd to ip:port through the ring.
func (r *Ring) ConnectInet4(fd int, ip [4]byte, port int) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip}
	sa.Port = uint16(port>>8) | uint16(port&0xff)<<8 // network byte order
	res, err := r.run(sqe{opcode: opConnect, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&sa))), off: uint64(unsafe.Sizeof(sa))})
	runtime.KeepAlive(&sa)
	return result(res, err)
}

// Unlinkat removes path, relative to the working directory, through the
// ring; flags may hold AT_REMOVEDIR.
func (r *Ring) Unlinkat(path string, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	res, err := r.run(sqe{opcode: opUnlinkat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(p))), opFlags: uint32(flags)})
	runtime.KeepAlive(p)
	return result(res, err)
}

// Renameat renames from to to, both relative to the working directory,
// through the ring.
func (r *Ring) Renameat(from, to string) error {
	f, err := unix.BytePtrFromString(from)
	if err != nil {
		return err
	}
	t, err := unix.BytePtrFromString(to)
	if err != nil {
		return err
	}
	atFdcwd := int32(unix.AT_FDCWD)
	res, err := r.run(sqe{opcode: opRenameat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(f))), len: uint32(atFdcwd), off: uint64(uintptr(unsafe.Pointer(t)))})
	runtime.KeepAlive(f)
	runtime.KeepAlive(t)
	return result(res, err)
}

// result turns a completion's result into an error.
func result(res int32, err error) error {
	if err != nil {
		return err
	}
	if res < 0 {
		return unix.Errno(-res)
	}
	return nil
}
