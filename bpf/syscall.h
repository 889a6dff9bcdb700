/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The generic syscall record (struct rec_syscall), shared by the process and
 * file probes: the record is built at sys_exit with the result (see
 * exit_args for where the arguments come from).
 */
#ifndef VIGIL_SYSCALL_H
#define VIGIL_SYSCALL_H

#include "common.h"

/*
 * emit_syscall builds the generic record at sys_exit. sys is a constant at
 * every call site, so the compiler keeps only the strings that syscall has.
 */
static __always_inline int emit_syscall(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
	if (!exit_args(&in, sys))
		return 0;
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	struct rec_syscall *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_SYSCALL, sys, sizeof(*r));
	r->h.ret = ctx->ret;
#pragma unroll
	for (int i = 0; i < 6; i++)
		r->args[i] = in.args[i];
	r->extra = 0;
	r->extra2 = 0;
	r->path_mask = 0;
	r->_pad = 0;
	__u32 off = sizeof(*r);
	struct task_struct *t = current_task();
	const char *p0 = (const char *)in.args[0];
	const char *p1 = (const char *)in.args[1];
	const char *p2 = (const char *)in.args[2];
	const char *p3 = (const char *)in.args[3];

	switch (sys) {
	case VIGIL_SYS_SETUID:
	case VIGIL_SYS_SETGID:
	case VIGIL_SYS_SETREUID:
	case VIGIL_SYS_SETREGID:
	case VIGIL_SYS_SETRESUID:
	case VIGIL_SYS_SETRESGID: {
		/* The credentials in force after the call, for the process table. */
		const struct cred *c = KREAD(t, cred);
		r->extra = KREAD(c, uid.val) | ((__u64)KREAD(c, gid.val) << 32);
		r->extra2 = KREAD(c, euid.val) | ((__u64)KREAD(c, egid.val) << 32);
		break;
	}
	case VIGIL_SYS_CAPSET: {
		__u32 hdr[2] = {};
		__u32 data[6] = {};
		bpf_probe_read_user(hdr, sizeof(hdr), p0);
		bpf_probe_read_user(data, sizeof(data), p1);
		r->extra = (__u64)data[0] | ((__u64)data[3] << 32);  /* effective */
		r->extra2 = (__u64)data[1] | ((__u64)data[4] << 32); /* permitted */
		r->args[2] = (__u64)data[2] | ((__u64)data[5] << 32); /* inheritable */
		r->args[3] = hdr[1];                                 /* target pid */
		break;
	}
	case VIGIL_SYS_MEMFD_CREATE:
		off = put_user_str(s, off, 0, p0, 256);
		break;
	case VIGIL_SYS_INIT_MODULE:
		off = put_user_str(s, off, 1, p2, 256);
		break;
	case VIGIL_SYS_FINIT_MODULE:
		r->path_mask = 1;
		off = put_file_path(s, off, 0, fd_file(t, in.args[0]));
		off = put_user_str(s, off, 1, p1, 256);
		break;
	case VIGIL_SYS_MOUNT:
		off = put_user_str(s, off, 0, p0, 4096);
		off = put_user_str(s, off, 1, p1, 4096);
		off = put_user_str(s, off, 2, p2, 64);
		break;
	case VIGIL_SYS_SETNS: {
		/* nsfs names its dentries on the fly: send the inode and magic. */
		struct file *f = fd_file(t, in.args[0]);
		r->extra = KREAD(f, f_inode, i_ino);
		r->extra2 = KREAD(f, f_inode, i_sb, s_magic);
		r->path_mask = 1;
		off = put_file_path(s, off, 0, f);
		break;
	}
	case VIGIL_SYS_BPF:
		if (in.args[0] == 5 /* BPF_PROG_LOAD */) {
			__u32 pt = 0;
			bpf_probe_read_user(&pt, sizeof(pt), p1);
			r->extra = pt;
		}
		break;
	/* File syscalls share this record; see file.bpf.c. */
	case VIGIL_SYS_UNLINK:
	case VIGIL_SYS_RMDIR:
	case VIGIL_SYS_CHMOD:
	case VIGIL_SYS_CHOWN:
	case VIGIL_SYS_LCHOWN:
	case VIGIL_SYS_TRUNCATE:
		r->path_mask = 2;
		off = put_user_str(s, off, 0, p0, 4096);
		off = put_base(s, off, 1, AT_FDCWD_VAL, p0);
		break;
	case VIGIL_SYS_UNLINKAT:
	case VIGIL_SYS_FCHMODAT:
	case VIGIL_SYS_FCHOWNAT:
		r->path_mask = 2;
		off = put_user_str(s, off, 0, p1, 4096);
		off = put_base(s, off, 1, in.args[0], p1);
		break;
	case VIGIL_SYS_FCHMOD:
	case VIGIL_SYS_FCHOWN:
	case VIGIL_SYS_FTRUNCATE:
		r->path_mask = 1;
		off = put_file_path(s, off, 0, fd_file(t, in.args[0]));
		break;
	case VIGIL_SYS_RENAME:
	case VIGIL_SYS_LINK:
		r->path_mask = 2 | 8;
		off = put_user_str(s, off, 0, p0, 4096);
		off = put_base(s, off, 1, AT_FDCWD_VAL, p0);
		off = put_user_str(s, off, 2, p1, 4096);
		off = put_base(s, off, 3, AT_FDCWD_VAL, p1);
		break;
	case VIGIL_SYS_RENAMEAT:
	case VIGIL_SYS_RENAMEAT2:
	case VIGIL_SYS_LINKAT:
		r->path_mask = 2 | 8;
		off = put_user_str(s, off, 0, p1, 4096);
		off = put_base(s, off, 1, in.args[0], p1);
		off = put_user_str(s, off, 2, p3, 4096);
		off = put_base(s, off, 3, in.args[2], p3);
		break;
	case VIGIL_SYS_SYMLINK:
		r->path_mask = 8;
		off = put_user_str(s, off, 0, p0, 4096);
		off = set_len(s, off, 1, 0);
		off = put_user_str(s, off, 2, p1, 4096);
		off = put_base(s, off, 3, AT_FDCWD_VAL, p1);
		break;
	case VIGIL_SYS_SYMLINKAT:
		r->path_mask = 8;
		off = put_user_str(s, off, 0, p0, 4096);
		off = set_len(s, off, 1, 0);
		off = put_user_str(s, off, 2, p2, 4096);
		off = put_base(s, off, 3, in.args[1], p2);
		break;
	default:
		break;
	}
	submit(cfg, s, off);
	return 0;
}

/*
 * PROBE_PAIR defines the programs of one syscall: exit_NAME on
 * syscalls/sys_exit_NAME returns EXIT(ctx, SYS), and in the compat object
 * enter_NAME on syscalls/sys_enter_NAME first returns ENTER(ctx, SYS, N),
 * which filters and remembers the syscall's first N arguments for the exit
 * (see exit_args). The direct object reads the arguments at exit and has no
 * enter programs, so ENTER functions exist only in the compat object.
 */
#ifdef VIGIL_COMPAT
#define PROBE_ENTER(name, SYS, N, ENTER)                                     \
	SEC("tracepoint/syscalls/sys_enter_" #name)                          \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)              \
	{                                                                    \
		return ENTER(ctx, SYS, N);                                   \
	}

/* remember_filtered is the enter side of most syscalls. */
static __always_inline int remember_filtered(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!enter_filter())
		return 0;
	return remember(ctx, sys, nargs);
}
#else
#define PROBE_ENTER(name, SYS, N, ENTER)
#endif

#define PROBE_PAIR(name, SYS, N, ENTER, EXIT)                                \
	PROBE_ENTER(name, SYS, N, ENTER)                                     \
	SEC("tracepoint/syscalls/sys_exit_" #name)                           \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                \
	{                                                                    \
		return EXIT(ctx, SYS);                                       \
	}

/* SYSCALL_PAIR defines a syscall recorded as the generic record. */
#define SYSCALL_PAIR(name, SYS, N) PROBE_PAIR(name, SYS, N, remember_filtered, emit_syscall)

#endif
