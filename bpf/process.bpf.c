//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Process probes: exec, fork and exit from BTF tracepoints, and the
 * privilege and evasion syscalls (setuid family, capset, ptrace,
 * memfd_create, modules, mount, namespaces, bpf, userfaultfd,
 * process_vm_writev, mprotect with PROT_EXEC) from syscall tracepoints.
 * Compiled as part of vigil.bpf.c so all probes share one set of maps.
 */
#include "common.h"
#include "syscall.h"

#ifdef VIGIL_COMPAT
/*
 * execveat's dirfd and flags, kept from sys_enter for sched_process_exec. The
 * direct build reads bprm->fdpath instead and attaches no sys_enter program
 * at all: any program on the sys_enter tracepoint puts every system call of
 * every process through it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct inflight);
} execveat_args SEC(".maps");
#endif

static __always_inline __u32 tgid_nspid(struct task_struct *t)
{
	struct pid *p = KREAD(t, group_leader, thread_pid);
	unsigned int level = KREAD(p, level);
	return BPF_CORE_READ(p, numbers[level & 31].nr); /* variable index */
}

static __always_inline __u32 tty_dev(struct task_struct *t)
{
	struct tty_struct *tty = KREAD(t, signal, tty);
	if (!tty)
		return 0;
	__u32 major = KREAD(tty, driver, major);
	__u32 minor = KREAD(tty, driver, minor_start) + KREAD(tty, index);
	/* new_encode_dev, as in /proc/PID/stat's tty_nr. */
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

#define OVERLAYFS_SUPER_MAGIC_VAL 0x794c7630

/*
 * exe_upper_layer tells whether an overlay inode has an upper dentry: the
 * file was written in the container (created or copied up), not taken from
 * the image. Kernels whose BTF lacks struct ovl_inode (overlay built as a
 * module) report false; the CO-RE check removes the read there.
 */
static __always_inline __u8 exe_upper_layer(struct inode *ino)
{
	if (!bpf_core_type_exists(struct ovl_inode))
		return 0;
	if (KREAD(ino, i_sb, s_magic) != OVERLAYFS_SUPER_MAGIC_VAL)
		return 0;
	struct ovl_inode *oi = KCONTAINER(ino, struct ovl_inode, vfs_inode);
	return KREAD(oi, __upperdentry) != NULL;
}

/*
 * Inode timestamps moved twice: struct timespec64 i_mtime and i_ctime
 * before 6.6, __i_ctime in 6.6, __i_mtime and __i_ctime in 6.7-6.10, and
 * second and nanosecond fields since 6.11. CO-RE picks the one the running
 * kernel has.
 */
struct inode___ts_old {
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___ts_66 {
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___ts_67 {
	struct timespec64 __i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

#define TS_NS(sec, nsec) ((__u64)(sec) * 1000000000ULL + (__u64)(nsec))

static __always_inline void inode_times(struct inode *ino, __u64 *mtime, __u64 *ctime)
{
	if (bpf_core_field_exists(ino->i_mtime_sec)) {
		*mtime = TS_NS(KREAD(ino, i_mtime_sec), KREAD(ino, i_mtime_nsec));
		/* 6.13+ keeps a "queried" flag for multigrain timestamps in bit 31. */
		*ctime = TS_NS(KREAD(ino, i_ctime_sec), KREAD(ino, i_ctime_nsec) & ~(1U << 31));
	} else if (bpf_core_field_exists(((struct inode___ts_67 *)ino)->__i_mtime)) {
		struct inode___ts_67 *i = (void *)ino;
		*mtime = TS_NS(KREAD(i, __i_mtime.tv_sec), KREAD(i, __i_mtime.tv_nsec));
		*ctime = TS_NS(KREAD(i, __i_ctime.tv_sec), KREAD(i, __i_ctime.tv_nsec));
	} else if (bpf_core_field_exists(((struct inode___ts_66 *)ino)->__i_ctime)) {
		struct inode___ts_66 *i = (void *)ino;
		*mtime = TS_NS(KREAD(i, i_mtime.tv_sec), KREAD(i, i_mtime.tv_nsec));
		*ctime = TS_NS(KREAD(i, __i_ctime.tv_sec), KREAD(i, __i_ctime.tv_nsec));
	} else {
		struct inode___ts_old *i = (void *)ino;
		*mtime = TS_NS(KREAD(i, i_mtime.tv_sec), KREAD(i, i_mtime.tv_nsec));
		*ctime = TS_NS(KREAD(i, i_ctime.tv_sec), KREAD(i, i_ctime.tv_nsec));
	}
}

static __always_inline void mark_ignored_binary(struct rec_config *cfg, __u32 tgid, struct file *exe)
{
	if (!(cfg->flags & VIGIL_CFG_IGNORE_BINARIES))
		return;
	struct rec_file_key k = {};
	k.ino = KREAD(exe, f_inode, i_ino);
	k.dev = KREAD(exe, f_inode, i_sb, s_dev);
	__u32 ign = bpf_map_lookup_elem(&ignored_binaries, &k) != NULL;
	struct rec_proc_state *st = bpf_map_lookup_elem(&proc_state, &tgid);
	if (st) {
		st->ignored = ign;
	} else if (ign) {
		struct rec_proc_state init = {};
		init.ignored = 1;
		init.tokens = (__u64)cfg->rate_burst * 1000000000ULL;
		init.last_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&proc_state, &tgid, &init, BPF_ANY);
	}
}

#ifdef VIGIL_COMPAT
SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	struct inflight in = {};
	in.sys = VIGIL_SYS_EXECVEAT;
	in.args[0] = ctx->args[0];
	in.args[1] = ctx->args[1];
	in.args[4] = ctx->args[4];
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&execveat_args, &tid, &in, BPF_ANY);
	return 0;
}

/* Failed execveat: forget its arguments (success was handled at exec). */
SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&execveat_args, &tid);
	return 0;
}
#endif

/*
 * is_elf32 says whether the program exec loaded is a 32-bit ELF (the header
 * the loader read is still in bprm->buf; for a script it is the
 * interpreter's). On a 64-bit kernel such a process runs in compatibility
 * mode, and the per-syscall tracepoints do not fire for compat system calls:
 * its opens, connects and the rest are invisible, so user space reports the
 * exec itself.
 */
static __always_inline __u8 is_elf32(struct linux_binprm *bprm)
{
	__u64 head = 0;
	bpf_core_read(&head, sizeof(head), &bprm->buf);
	return (__u32)head == 0x464c457f /* "\x7fELF" */ && ((head >> 32) & 0xff) == 1 /* ELFCLASS32 */;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct rec_config *cfg = get_config();
	if (!cfg)
		return 0;
	__u32 tgid = KREAD(p, tgid);
	__u32 old = old_pid;
#ifdef VIGIL_COMPAT
	struct inflight *at = bpf_map_lookup_elem(&execveat_args, &old);
#endif
	struct file *exe = KREAD(bprm, file);
	mark_ignored_binary(cfg, tgid, exe);
	if (!wanted(cfg, tgid, true)) {
#ifdef VIGIL_COMPAT
		if (at)
			bpf_map_delete_elem(&execveat_args, &old);
#endif
		return 0;
	}
	struct scratch *s = scratch();
	if (!s)
		return 0;
	struct rec_exec *e = (void *)s->buf;
	fill_hdr(&e->h, VIGIL_REC_EXEC, VIGIL_SYS_EXECVE, sizeof(*e));
	e->old_tid = old;
	e->execveat = 0;
	e->flags = 0;
	e->dirfd = 0;
#ifdef VIGIL_COMPAT
	if (at) {
		e->h.sys = VIGIL_SYS_EXECVEAT;
		e->execveat = VIGIL_EXECVEAT_ARGS;
		e->dirfd = at->args[0];
		e->flags = at->args[4];
		bpf_map_delete_elem(&execveat_args, &old);
	}
#else
	/*
	 * An exec relative to a file descriptor (execveat with a dirfd, fexecve)
	 * runs under the name "/dev/fd/N" or "/dev/fd/N/PATH", which the kernel
	 * keeps in fdpath; user space reads the dirfd, and AT_EMPTY_PATH, from
	 * the filename.
	 */
	if (bpf_core_field_exists(bprm->fdpath) && bprm->fdpath) {
		e->h.sys = VIGIL_SYS_EXECVEAT;
		e->execveat = VIGIL_EXECVEAT_FDPATH;
	}
#endif

	struct task_struct *parent = KREAD(p, real_parent);
	e->start_time = KREAD(p, start_boottime);
	e->parent_start_time = KREAD(parent, start_boottime);
	e->ppid = KREAD(parent, tgid);
	e->ns_pid = tgid_nspid(p);
	const struct cred *cred = KREAD(p, cred);
	e->uid = KREAD(cred, uid.val);
	e->gid = KREAD(cred, gid.val);
	e->euid = KREAD(cred, euid.val);
	e->egid = KREAD(cred, egid.val);
	e->cap_effective = 0;
	bpf_core_read(&e->cap_effective, sizeof(e->cap_effective), &cred->cap_effective);
	e->loginuid = (__u32)-1;
	if (bpf_core_field_exists(p->loginuid))
		e->loginuid = KREAD(p, loginuid.val);
	struct pid *sidp = KREAD(p, signal, pids[PIDTYPE_SID]);
	e->sid = KREAD(sidp, numbers[0].nr);
	e->tty = tty_dev(p);
	struct inode *ino = KREAD(exe, f_inode);
	e->exe_ino = KREAD(ino, i_ino);
	e->exe_dev = KREAD(ino, i_sb, s_dev);
	e->fileless = KREAD(ino, __i_nlink) == 0;
	e->exe_size = KREAD(ino, i_size);
	inode_times(ino, &e->exe_mtime, &e->exe_ctime);
	e->upper_layer = exe_upper_layer(ino);
	e->_pad = 0;
	e->exe_outside_root = 0;
	e->elf32 = is_elf32(bprm);

	for (int i = 0; i < 3; i++) {
		struct rec_fdinfo *fi = &e->stdio[i];
		__builtin_memset(fi, 0, sizeof(*fi));
		fd_info(fd_file(p, i), fi);
	}

	__u32 off = sizeof(*e);
	off = put_kernel_str(s, off, 0, KREAD(bprm, filename), 4096);
	off = put_file_path(s, off, 1, exe);
	e->exe_outside_root = last_walk_end() == WALK_OUTSIDE_ROOT;

	struct mm_struct *mm = KREAD(p, mm);
	unsigned long as = KREAD(mm, arg_start), ae = KREAD(mm, arg_end);
	unsigned long alen = ae > as ? ae - as : 0;
	e->args_truncated = alen > cfg->argv_max;
	if (alen > cfg->argv_max)
		alen = cfg->argv_max;
	off = put_user_bytes(s, off, 2, (void *)as, alen);
	off = put_cwd(s, off, 3, p);
	unsigned long es = KREAD(mm, env_start), ee = KREAD(mm, env_end);
	unsigned long elen = ee > es ? ee - es : 0;
	e->env_truncated = elen > cfg->env_max;
	if (elen > cfg->env_max)
		elen = cfg->env_max;
	off = put_user_bytes(s, off, 4, (void *)es, elen);
	submit(cfg, s, off);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 cpid = KREAD(child, pid), ctgid = KREAD(child, tgid);
	if (cpid != ctgid)
		return 0; /* a new thread, not a new process */
	struct rec_config *cfg = get_config();
	if (!cfg)
		return 0;
	__u32 ptgid = KREAD(parent, tgid);
	struct rec_proc_state *pst = bpf_map_lookup_elem(&proc_state, &ptgid);
	if (pst && pst->ignored) {
		/* Children of an ignored binary stay ignored until they exec. */
		struct rec_proc_state init = {};
		init.ignored = 1;
		bpf_map_update_elem(&proc_state, &ctgid, &init, BPF_ANY);
	}
	if (!wanted(cfg, ptgid, true))
		return 0;
	struct scratch *s = scratch();
	if (!s)
		return 0;
	struct rec_fork *f = (void *)s->buf;
	fill_hdr(&f->h, VIGIL_REC_FORK, VIGIL_SYS_CLONE, sizeof(*f));
	f->h.pid = ptgid;
	f->h.ret = cpid;
	f->child_pid = ctgid;
	f->child_tid = cpid;
	f->start_time = KREAD(child, start_boottime);
	f->parent_start_time = KREAD(parent, group_leader, start_boottime);
	f->ns_pid = tgid_nspid(child);
	f->_pad = 0;
	submit(cfg, s, sizeof(*f));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p)
{
#ifdef VIGIL_COMPAT
	/* Arguments a sys_enter program kept for an exit that never came. */
	__u32 tid = KREAD(p, pid);
	bpf_map_delete_elem(&inflight_map, &tid);
#endif
	/* Only the last thread of a process ends the process. */
	if (KREAD(p, signal, live.counter) != 0)
		return 0;
	__u32 tgid = KREAD(p, tgid);
	struct rec_config *cfg = get_config();
	if (!cfg)
		return 0;
	bool keep = wanted(cfg, tgid, true);
	/*
	 * Most processes have no state (it exists only under rate limits and
	 * ignored binaries): a lookup takes no lock, a delete takes the bucket's.
	 */
	if (bpf_map_lookup_elem(&proc_state, &tgid))
		bpf_map_delete_elem(&proc_state, &tgid);
	if (!keep)
		return 0;
	struct scratch *s = scratch();
	if (!s)
		return 0;
	struct rec_exit *x = (void *)s->buf;
	fill_hdr(&x->h, VIGIL_REC_EXIT, VIGIL_SYS_EXIT, sizeof(*x));
	x->start_time = KREAD(p, group_leader, start_boottime);
	x->code = KREAD(p, exit_code);
	x->h.ret = x->code;
	x->_pad = 0;
	submit(cfg, s, sizeof(*x));
	return 0;
}

SYSCALL_PAIR(setuid, VIGIL_SYS_SETUID, 1)
SYSCALL_PAIR(setgid, VIGIL_SYS_SETGID, 1)
SYSCALL_PAIR(setreuid, VIGIL_SYS_SETREUID, 2)
SYSCALL_PAIR(setregid, VIGIL_SYS_SETREGID, 2)
SYSCALL_PAIR(setresuid, VIGIL_SYS_SETRESUID, 3)
SYSCALL_PAIR(setresgid, VIGIL_SYS_SETRESGID, 3)
SYSCALL_PAIR(capset, VIGIL_SYS_CAPSET, 2)
SYSCALL_PAIR(ptrace, VIGIL_SYS_PTRACE, 4)
SYSCALL_PAIR(memfd_create, VIGIL_SYS_MEMFD_CREATE, 2)
SYSCALL_PAIR(init_module, VIGIL_SYS_INIT_MODULE, 3)
SYSCALL_PAIR(finit_module, VIGIL_SYS_FINIT_MODULE, 3)
SYSCALL_PAIR(mount, VIGIL_SYS_MOUNT, 5)
SYSCALL_PAIR(unshare, VIGIL_SYS_UNSHARE, 1)
SYSCALL_PAIR(setns, VIGIL_SYS_SETNS, 2)
SYSCALL_PAIR(bpf, VIGIL_SYS_BPF, 3)
SYSCALL_PAIR(userfaultfd, VIGIL_SYS_USERFAULTFD, 1)
SYSCALL_PAIR(process_vm_writev, VIGIL_SYS_PROCESS_VM_WRITEV, 6)
/*
 * Operations submitted through an io_uring (open, connect, send, ...) never
 * pass through a system call, so no syscall probe sees them: setting one up
 * is what can be reported.
 */
SYSCALL_PAIR(io_uring_setup, VIGIL_SYS_IO_URING_SETUP, 2)

/*
 * Fallback for syscalls whose own tracepoints this kernel lacks (a kernel
 * built without module support has no syscalls/sys_enter_init_module, yet
 * the attempt still reaches the kernel and is worth reporting). The generic
 * raw_syscalls tracepoints run for every syscall, so user space attaches
 * them only while a fallback is in use, and raw_fallback (native syscall
 * number -> enum rec_sys, 0 for none) keeps the work per syscall to one
 * array lookup. The records are the per-syscall probes' own.
 */
#define RAW_FALLBACK_SLOTS 512
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RAW_FALLBACK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} raw_fallback SEC(".maps");

static __always_inline __u32 fallback_sys(long id)
{
	if (id < 0 || id >= RAW_FALLBACK_SLOTS)
		return VIGIL_SYS_NONE;
	__u32 k = id;
	__u32 *sys = bpf_map_lookup_elem(&raw_fallback, &k);
	return sys ? *sys : VIGIL_SYS_NONE;
}

#ifdef VIGIL_COMPAT
SEC("tracepoint/raw_syscalls/sys_enter")
int raw_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 sys = fallback_sys(ctx->id);
	if (sys == VIGIL_SYS_NONE || !enter_filter())
		return 0;
	switch (sys) {
	case VIGIL_SYS_INIT_MODULE:
		return remember(ctx, VIGIL_SYS_INIT_MODULE, 3);
	case VIGIL_SYS_FINIT_MODULE:
		return remember(ctx, VIGIL_SYS_FINIT_MODULE, 3);
	}
	return 0;
}
#endif

SEC("tracepoint/raw_syscalls/sys_exit")
int raw_exit(struct trace_event_raw_sys_exit *ctx)
{
	switch (fallback_sys(ctx->id)) {
	case VIGIL_SYS_INIT_MODULE:
		return emit_syscall(ctx, VIGIL_SYS_INIT_MODULE);
	case VIGIL_SYS_FINIT_MODULE:
		return emit_syscall(ctx, VIGIL_SYS_FINIT_MODULE);
	}
	return 0;
}

/* mprotect is frequent; only calls that ask for PROT_EXEC are kept. */
#ifdef VIGIL_COMPAT
static __always_inline int mprotect_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!(ctx->args[2] & PROT_EXEC_VAL))
		return 0;
	return remember_filtered(ctx, sys, nargs);
}
#endif

static __always_inline int mprotect_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
#ifndef VIGIL_COMPAT
	struct inflight in;
	syscall_args(&in, sys);
	if (!(in.args[2] & PROT_EXEC_VAL))
		return 0;
#endif
	return emit_syscall(ctx, sys);
}

PROBE_PAIR(mprotect, VIGIL_SYS_MPROTECT, 3, mprotect_enter, mprotect_exit)
