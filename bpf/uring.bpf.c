//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * io_uring probe: opens and connects a program submits through an io_uring
 * never pass through a system call, so the syscall probes cannot see them.
 * This program reads them at completion (the io_uring_complete tracepoint,
 * which runs in the submitting process or one of its io_uring threads, so
 * its file table and filters apply) and emits the same records the open and
 * connect probes do, under their own syscall numbers. Compiled as part of
 * vigil.bpf.c.
 */
#include "common.h"

/* uring_open reports an IORING_OP_OPENAT or OPENAT2 that completed with res. */
static __always_inline void uring_open(struct rec_config *cfg, struct scratch *s, struct io_kiocb *req, long res, __u32 sys)
{
	struct rec_open *o = (void *)s->buf;
	fill_hdr(&o->h, VIGIL_REC_OPEN, sys, sizeof(*o));
	o->h.ret = res;
	/* The request's command area holds the open's arguments. */
	struct io_open *op = KCAST(struct io_open, req);
	o->dfd = KREAD(op, dfd);
	o->flags = KREAD(op, how.flags);
	o->mode = KREAD(op, how.mode);
	o->ino = 0;
	o->dev = 0;
	o->fs_magic = 0;
	o->created = 0;
	__u32 off = sizeof(*o);
	/*
	 * res is the new descriptor. An open into a fixed-file slot returns 0
	 * and leaves the task's table alone: its path is not known here.
	 */
	struct file *f = NULL;
	if (res >= 0 && KREAD(op, file_slot) == 0)
		f = fd_file(current_task(), res);
	if (f) {
		struct path p = {};
		KREAD_INTO(&p, f, f_path);
		struct inode *ino = KREAD(f, f_inode);
		o->ino = KREAD(ino, i_ino);
		o->dev = KREAD(ino, i_sb, s_dev);
		o->fs_magic = KREAD(ino, i_sb, s_magic);
		o->created = (KREAD(f, f_mode) & FMODE_CREATED_VAL) != 0;
		off = put_path(s, off, 0, p.dentry, p.mnt);
	} else {
		off = set_len(s, off, 0, 0);
	}
	/* The requested name was freed before completion: none to report. */
	off = set_len(s, off, 1, 0);
	off = set_len(s, off, 2, 0);
	submit(cfg, s, off);
}

/* uring_connect reports an IORING_OP_CONNECT, with the socket's addresses. */
static __always_inline void uring_connect(struct rec_config *cfg, struct scratch *s, struct io_kiocb *req, long res)
{
	struct rec_sock *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_SOCK, VIGIL_SYS_IO_URING_CONNECT, sizeof(*r));
	r->h.ret = res;
	__builtin_memset(&r->remote, 0, sizeof(r->remote));
	__builtin_memset(&r->local, 0, sizeof(r->local));
	/* The request's copy of the descriptor shares its slot with the
	 * completion flags, already set by now: the number is not known. */
	r->fd = -1;
	r->arg = 0;
	r->family = 0;
	r->stype = 0;
	r->proto = 0;
	r->_pad = 0;
	sock_facts(r, KREAD(req, file));
	submit(cfg, s, sizeof(*r));
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(uring_complete, struct io_ring_ctx *ring, void *reqp, struct io_uring_cqe *cqe)
{
	struct io_kiocb *req = KCAST(struct io_kiocb, reqp);
	__u8 op = KREAD(req, opcode);
	__u32 sys, flag;
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT)) {
		sys = VIGIL_SYS_IO_URING_OPENAT;
		flag = VIGIL_CFG_URING_OPEN;
	} else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT2)) {
		sys = VIGIL_SYS_IO_URING_OPENAT2;
		flag = VIGIL_CFG_URING_OPEN;
	} else if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_CONNECT)) {
		sys = VIGIL_SYS_IO_URING_CONNECT;
		flag = VIGIL_CFG_URING_CONNECT;
	} else {
		return 0;
	}
	/* The open and connect event kinds switch these on and off. */
	struct rec_config *cfg = enter_filter();
	if (!cfg || !(cfg->flags & flag))
		return 0;
	struct scratch *s = scratch();
	if (!s)
		return 0;
	long res = KREAD(cqe, res);
	if (sys == VIGIL_SYS_IO_URING_CONNECT)
		uring_connect(cfg, s, req, res);
	else
		uring_open(cfg, s, req, res, sys);
	return 0;
}
