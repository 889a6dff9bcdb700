//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * io_uring probes: opens, connects, unlinks and renames a program submits
 * through an io_uring never pass through a system call, so the syscall
 * probes cannot see them.
 * This program reads them at completion (the io_uring_complete tracepoint,
 * which runs in the submitting process or one of its io_uring threads, so
 * its file table and filters apply) and emits the same records the open,
 * connect, unlink and rename probes do, under their own syscall numbers.
 * The kernel frees an operation's path names before it completes, so they
 * are copied at submission (io_uring_submit_req) and kept by request until
 * then. Compiled as part of vigil.bpf.c.
 */
#include "common.h"

#define URING_NAME_MAX 256

/* Path names of one submitted request: one (open, unlink) or two (rename). */
struct uring_names {
	__s32 dfd[2];
	__u32 flags;
	__u32 _pad;
	char name[2][URING_NAME_MAX];
};

/*
 * By request address. A request whose completion never comes (the ring torn
 * down first) ages out of the LRU; an address reused before then is
 * overwritten at its next submission.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct uring_names);
} uring_pending SEC(".maps");

/* The names are built here, too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uring_names);
} uring_names_buf SEC(".maps");

/* uring_kind says which event an opcode is, and the flag that enables it. */
static __always_inline __u32 uring_kind(__u8 op, __u32 *flag)
{
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT)) {
		*flag = VIGIL_CFG_URING_OPEN;
		return VIGIL_SYS_IO_URING_OPENAT;
	}
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_OPENAT2)) {
		*flag = VIGIL_CFG_URING_OPEN;
		return VIGIL_SYS_IO_URING_OPENAT2;
	}
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_CONNECT)) {
		*flag = VIGIL_CFG_URING_CONNECT;
		return VIGIL_SYS_IO_URING_CONNECT;
	}
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_UNLINKAT)) {
		*flag = VIGIL_CFG_URING_UNLINK;
		return VIGIL_SYS_IO_URING_UNLINKAT;
	}
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_RENAMEAT)) {
		*flag = VIGIL_CFG_URING_RENAME;
		return VIGIL_SYS_IO_URING_RENAMEAT;
	}
	return VIGIL_SYS_NONE;
}

static __always_inline void copy_filename(char *dst, struct filename *f)
{
	const char *name = KREAD(f, name);
	if (!name || bpf_probe_read_kernel_str(dst, URING_NAME_MAX, name) < 0)
		dst[0] = 0;
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(uring_submit, struct io_kiocb *reqp)
{
	struct io_kiocb *req = KCAST(struct io_kiocb, reqp);
	__u32 flag = 0;
	__u32 sys = uring_kind(KREAD(req, opcode), &flag);
	if (sys == VIGIL_SYS_NONE || sys == VIGIL_SYS_IO_URING_CONNECT)
		return 0;
	struct rec_config *cfg = enter_filter();
	if (!cfg || !(cfg->flags & flag))
		return 0;
	__u32 zero = 0;
	struct uring_names *n = bpf_map_lookup_elem(&uring_names_buf, &zero);
	if (!n)
		return 0;
	n->dfd[1] = 0;
	n->flags = 0;
	n->name[1][0] = 0;
	if (sys == VIGIL_SYS_IO_URING_RENAMEAT) {
		struct io_rename *rn = KCAST(struct io_rename, req);
		n->dfd[0] = KREAD(rn, old_dfd);
		n->dfd[1] = KREAD(rn, new_dfd);
		n->flags = KREAD(rn, flags);
		copy_filename(n->name[0], KREAD(rn, oldpath));
		copy_filename(n->name[1], KREAD(rn, newpath));
	} else if (sys == VIGIL_SYS_IO_URING_UNLINKAT) {
		struct io_unlink *un = KCAST(struct io_unlink, req);
		n->dfd[0] = KREAD(un, dfd);
		n->flags = KREAD(un, flags);
		copy_filename(n->name[0], KREAD(un, filename));
	} else {
		struct io_open *op = KCAST(struct io_open, req);
		n->dfd[0] = KREAD(op, dfd);
		copy_filename(n->name[0], KREAD(op, filename));
	}
	__u64 key = (__u64)reqp;
	bpf_map_update_elem(&uring_pending, &key, n, BPF_ANY);
	return 0;
}

/* uring_names_of takes the names submission kept for the request, or NULL. */
static __always_inline struct uring_names *uring_names_of(void *reqp)
{
	__u64 key = (__u64)reqp;
	return bpf_map_lookup_elem(&uring_pending, &key);
}

static __always_inline void uring_names_done(void *reqp)
{
	__u64 key = (__u64)reqp;
	bpf_map_delete_elem(&uring_pending, &key);
}

/* uring_open reports an IORING_OP_OPENAT or OPENAT2 that completed with res. */
static __always_inline void uring_open(struct rec_config *cfg, struct scratch *s, struct io_kiocb *req, void *reqp, long res, __u32 sys)
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
	/* The name as requested, kept at submission (see uring_submit). */
	struct uring_names *n = uring_names_of(reqp);
	if (n) {
		off = put_kernel_str(s, off, 1, n->name[0], URING_NAME_MAX);
		if (f)
			off = set_len(s, off, 2, 0);
		else
			off = put_base_for(s, off, 2, n->dfd[0], n->name[0][0]);
		uring_names_done(reqp);
	} else {
		off = set_len(s, off, 1, 0);
		off = set_len(s, off, 2, 0);
	}
	submit(cfg, s, off);
}

/*
 * uring_path_op reports an IORING_OP_UNLINKAT or RENAMEAT in the generic
 * record the unlinkat and renameat2 probes use: the same arguments and
 * strings (each path, then the directory a relative one is resolved
 * against).
 */
static __always_inline void uring_path_op(struct rec_config *cfg, struct scratch *s, void *reqp, long res, __u32 sys)
{
	struct uring_names *n = uring_names_of(reqp);
	if (!n)
		return; /* submitted before the sensor started, or not kept */
	struct rec_syscall *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_SYSCALL, sys, sizeof(*r));
	r->h.ret = res;
	r->extra = 0;
	r->extra2 = 0;
	r->_pad = 0;
	r->args[0] = n->dfd[0];
	r->args[1] = 0;
	r->args[2] = sys == VIGIL_SYS_IO_URING_RENAMEAT ? n->dfd[1] : n->flags;
	r->args[3] = 0;
	r->args[4] = n->flags;
	r->args[5] = 0;
	__u32 off = sizeof(*r);
	off = put_kernel_str(s, off, 0, n->name[0], URING_NAME_MAX);
	off = put_base_for(s, off, 1, n->dfd[0], n->name[0][0]);
	r->path_mask = 2;
	if (sys == VIGIL_SYS_IO_URING_RENAMEAT) {
		r->path_mask = 2 | 8;
		off = put_kernel_str(s, off, 2, n->name[1], URING_NAME_MAX);
		off = put_base_for(s, off, 3, n->dfd[1], n->name[1][0]);
	}
	uring_names_done(reqp);
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
	__u32 flag = 0;
	__u32 sys = uring_kind(KREAD(req, opcode), &flag);
	if (sys == VIGIL_SYS_NONE)
		return 0;
	/* The open, connect, unlink and rename kinds switch these on and off. */
	struct rec_config *cfg = enter_filter();
	if (!cfg || !(cfg->flags & flag))
		return 0;
	struct scratch *s = scratch();
	if (!s)
		return 0;
	long res = KREAD(cqe, res);
	if (sys == VIGIL_SYS_IO_URING_CONNECT)
		uring_connect(cfg, s, req, res);
	else if (sys == VIGIL_SYS_IO_URING_UNLINKAT || sys == VIGIL_SYS_IO_URING_RENAMEAT)
		uring_path_op(cfg, s, reqp, res, sys);
	else
		uring_open(cfg, s, req, reqp, res, sys);
	return 0;
}
