//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * File probes: open/openat/openat2/creat with the kernel-resolved path of the
 * opened file, and unlink, rename, chmod, chown, link, symlink and truncate.
 * Compiled as part of vigil.bpf.c.
 */
#include "common.h"
#include "syscall.h"

/*
 * open_args normalises an open's raw arguments to (dfd, path, flags, mode).
 */
static __always_inline void open_args(struct inflight *in, __u32 sys, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
	in->sys = sys;
	switch (sys) {
	case VIGIL_SYS_OPEN:
		in->args[0] = (__u64)(long)AT_FDCWD_VAL;
		in->args[1] = a0;
		in->args[2] = a1;
		in->args[3] = a2;
		break;
	case VIGIL_SYS_CREAT:
		in->args[0] = (__u64)(long)AT_FDCWD_VAL;
		in->args[1] = a0;
		in->args[2] = 01 | 0100 | 01000; /* O_WRONLY|O_CREAT|O_TRUNC */
		in->args[3] = a1;
		break;
	case VIGIL_SYS_OPENAT2: {
		/* struct open_how { u64 flags; u64 mode; u64 resolve; } */
		__u64 how[2] = {};
		bpf_probe_read_user(how, sizeof(how), (void *)a2);
		in->args[0] = a0;
		in->args[1] = a1;
		in->args[2] = how[0];
		in->args[3] = how[1];
		break;
	}
	default:
		in->args[0] = a0;
		in->args[1] = a1;
		in->args[2] = a2;
		in->args[3] = a3;
	}
}

#ifdef VIGIL_COMPAT
/*
 * In the compat object open arguments wait for sys_exit in a slot of an
 * array indexed by the low bits of the thread id, not in the hash map the
 * other syscalls use: opens are the most frequent calls, and an array slot
 * costs no helper call and no lock. Two threads whose ids collide in the low
 * 16 bits and that open at the same moment take the same slot; the exit then
 * finds another thread's id, drops the record and counts it
 * (VIGIL_CNT_SLOT_CLASH). The direct object reads them at exit instead.
 */
#define OPEN_SLOTS 65536

struct open_slot {
	__u32 tid;
	__u32 sys;
	__u64 args[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OPEN_SLOTS);
	__type(key, __u32);
	__type(value, struct open_slot);
} open_slots SEC(".maps");

static __always_inline int open_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!enter_filter())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 idx = tid & (OPEN_SLOTS - 1);
	struct open_slot *slot = bpf_map_lookup_elem(&open_slots, &idx);
	if (!slot)
		return 0;
	struct inflight in = {};
	/* creat has two arguments, the others at least three; openat2 four. */
	if (sys == VIGIL_SYS_CREAT)
		open_args(&in, sys, ctx->args[0], ctx->args[1], 0, 0);
	else if (sys == VIGIL_SYS_OPEN)
		open_args(&in, sys, ctx->args[0], ctx->args[1], ctx->args[2], 0);
	else
		open_args(&in, sys, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);
	if (slot->tid != 0)
		count(VIGIL_CNT_SLOT_CLASH); /* a stale or colliding entry is replaced */
	slot->sys = sys;
	slot->args[0] = in.args[0];
	slot->args[1] = in.args[1];
	slot->args[2] = in.args[2];
	slot->args[3] = in.args[3];
	slot->tid = tid;
	return 0;
}
#endif

/* open_exit_args gives the open's normalised arguments at sys_exit. */
static __always_inline bool open_exit_args(struct inflight *out, __u32 sys)
{
#ifdef VIGIL_COMPAT
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 idx = tid & (OPEN_SLOTS - 1);
	struct open_slot *slot = bpf_map_lookup_elem(&open_slots, &idx);
	if (!slot || slot->tid != tid)
		return false;
	out->sys = slot->sys;
	out->args[0] = slot->args[0];
	out->args[1] = slot->args[1];
	out->args[2] = slot->args[2];
	out->args[3] = slot->args[3];
	slot->tid = 0;
	return out->sys == sys;
#else
	if (!enter_filter())
		return false;
	struct inflight raw;
	syscall_args(&raw, sys);
	open_args(out, sys, raw.args[0], raw.args[1], raw.args[2], raw.args[3]);
	return true;
#endif
}

/*
 * What an open reports about the opened file. In the compat object each
 * kernel read is a helper call the traced process pays for, so where the
 * fields sit close together
 * (CO-RE offsets, checked at load time) one read fetches a span of the
 * struct: struct file's f_mode..f_path, struct inode's i_sb..i_ino and
 * struct super_block's s_dev..s_magic. Otherwise fields are read one by one.
 */
struct file_facts {
	struct path path;
	__u64 ino;
	__u64 magic;
	__u32 dev;
	__u32 mode;
};

#define SPAN_MAX 128

/* span_ok: fields at offsets lo and hi (hi's size sz) fit one read. */
#define SPAN_OK(lo, hi, sz) ((hi) >= (lo) && (hi) + (sz) - (lo) <= SPAN_MAX)

static __always_inline void read_file_facts(struct file *f, struct file_facts *ff)
{
#ifndef VIGIL_COMPAT
	struct inode *in = f->f_inode;
	struct super_block *isb = in->i_sb;
	ff->mode = f->f_mode;
	ff->path = f->f_path;
	ff->ino = in->i_ino;
	ff->dev = isb->s_dev;
	ff->magic = isb->s_magic;
#else
	/* Spans start 8-byte aligned so every field load from buf is aligned. */
	__u8 buf[SPAN_MAX] __attribute__((aligned(8)));
	__u32 mo = bpf_core_field_offset(struct file, f_mode) & ~7U;
	__u32 mf = bpf_core_field_offset(struct file, f_mode) - mo;
	__u32 io = bpf_core_field_offset(struct file, f_inode);
	__u32 po = bpf_core_field_offset(struct file, f_path);
	struct inode *ino;
	if (SPAN_OK(mo, po, 16) && io > mo && io < po && !(io & 7) && !(po & 7)) {
		bpf_probe_read_kernel(buf, po + 16 - mo, (void *)f + mo);
		barrier_var(mf);
		ff->mode = *(fmode_t *)(buf + mf);
		ino = *(struct inode **)(buf + (io - mo));
		ff->path.mnt = *(struct vfsmount **)(buf + (po - mo));
		ff->path.dentry = *(struct dentry **)(buf + (po - mo) + 8);
	} else {
		ff->mode = BPF_CORE_READ(f, f_mode);
		ino = BPF_CORE_READ(f, f_inode);
		BPF_CORE_READ_INTO(&ff->path, f, f_path);
	}
	__u32 so = bpf_core_field_offset(struct inode, i_sb);
	__u32 no = bpf_core_field_offset(struct inode, i_ino);
	struct super_block *sb;
	if (SPAN_OK(so, no, 8) && !(so & 7) && !(no & 7)) {
		bpf_probe_read_kernel(buf, no + 8 - so, (void *)ino + so);
		sb = *(struct super_block **)(buf + 0);
		ff->ino = *(__u64 *)(buf + (no - so));
	} else {
		sb = BPF_CORE_READ(ino, i_sb);
		ff->ino = BPF_CORE_READ(ino, i_ino);
	}
	__u32 dvo = bpf_core_field_offset(struct super_block, s_dev);
	__u32 mgo = bpf_core_field_offset(struct super_block, s_magic);
	if (SPAN_OK(dvo, mgo, 8) && !(dvo & 7) && !(mgo & 7)) {
		bpf_probe_read_kernel(buf, mgo + 8 - dvo, (void *)sb + dvo);
		ff->dev = *(__u32 *)(buf + 0);
		ff->magic = *(__u64 *)(buf + (mgo - dvo));
	} else {
		ff->dev = BPF_CORE_READ(sb, s_dev);
		ff->magic = BPF_CORE_READ(sb, s_magic);
	}
#endif
}

static __always_inline int open_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
	if (!open_exit_args(&in, sys))
		return 0;
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	struct rec_open *o = (void *)s->buf;
	fill_hdr(&o->h, VIGIL_REC_OPEN, sys, sizeof(*o));
	long ret = ctx->ret;
	o->h.ret = ret;
	o->dfd = in.args[0];
	o->flags = in.args[2];
	o->mode = in.args[3];
	o->ino = 0;
	o->dev = 0;
	o->fs_magic = 0;
	o->created = 0;
	const char *upath = (const char *)in.args[1];
	__u32 off = sizeof(*o);
	struct file *f = NULL;
	if (ret >= 0) {
		f = fd_file(current_task(), ret);
		if (f) {
			struct file_facts ff;
			read_file_facts(f, &ff);
			o->ino = ff.ino;
			o->dev = ff.dev;
			o->fs_magic = ff.magic;
			o->created = (ff.mode & FMODE_CREATED_VAL) != 0;
			off = put_path(s, off, 0, ff.path.dentry, ff.path.mnt);
		} else {
			off = set_len(s, off, 0, 0);
		}
	} else {
		off = set_len(s, off, 0, 0);
	}
	off = put_user_str(s, off, 1, upath, 4096);
	if (f) {
		off = set_len(s, off, 2, 0);
	} else {
		/* Failed: user space resolves the requested path against this. */
		off = put_base(s, off, 2, in.args[0], upath);
	}
	submit(cfg, s, off);
	return 0;
}

/* open_enter reads each open's own arguments; N is unused. */
#define OPEN_PAIR(name, SYS) PROBE_PAIR(name, SYS, 0, open_enter, open_exit)

OPEN_PAIR(open, VIGIL_SYS_OPEN)
OPEN_PAIR(openat, VIGIL_SYS_OPENAT)
OPEN_PAIR(openat2, VIGIL_SYS_OPENAT2)
OPEN_PAIR(creat, VIGIL_SYS_CREAT)

SYSCALL_PAIR(unlink, VIGIL_SYS_UNLINK, 1)
SYSCALL_PAIR(unlinkat, VIGIL_SYS_UNLINKAT, 3)
SYSCALL_PAIR(rmdir, VIGIL_SYS_RMDIR, 1)
SYSCALL_PAIR(rename, VIGIL_SYS_RENAME, 2)
SYSCALL_PAIR(renameat, VIGIL_SYS_RENAMEAT, 4)
SYSCALL_PAIR(renameat2, VIGIL_SYS_RENAMEAT2, 5)
SYSCALL_PAIR(chmod, VIGIL_SYS_CHMOD, 2)
SYSCALL_PAIR(fchmod, VIGIL_SYS_FCHMOD, 2)
SYSCALL_PAIR(fchmodat, VIGIL_SYS_FCHMODAT, 3)
SYSCALL_PAIR(chown, VIGIL_SYS_CHOWN, 3)
SYSCALL_PAIR(lchown, VIGIL_SYS_LCHOWN, 3)
SYSCALL_PAIR(fchown, VIGIL_SYS_FCHOWN, 3)
SYSCALL_PAIR(fchownat, VIGIL_SYS_FCHOWNAT, 5)
SYSCALL_PAIR(link, VIGIL_SYS_LINK, 2)
SYSCALL_PAIR(linkat, VIGIL_SYS_LINKAT, 5)
SYSCALL_PAIR(symlink, VIGIL_SYS_SYMLINK, 2)
SYSCALL_PAIR(symlinkat, VIGIL_SYS_SYMLINKAT, 3)
SYSCALL_PAIR(truncate, VIGIL_SYS_TRUNCATE, 2)
SYSCALL_PAIR(ftruncate, VIGIL_SYS_FTRUNCATE, 2)
