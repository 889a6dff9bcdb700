/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps and helpers shared by the process, file and network probes: the ring
 * buffer, the per-CPU scratch record, in-kernel filters, the per-thread
 * argument store that pairs sys_enter with sys_exit, and the dentry walk.
 */
#ifndef VIGIL_COMMON_H
#define VIGIL_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Kernel memory access. Vigil builds two objects from these sources, and the
 * sensor loads the first one the kernel accepts:
 *
 *  - the direct object (default) reads kernel structs with plain loads
 *    through BTF-typed pointers: the current task from
 *    bpf_get_current_task_btf(), other addresses given a type with
 *    bpf_rdonly_cast(). The verifier turns each load into one instruction
 *    guarded by the exception table, where bpf_probe_read_kernel is a helper
 *    call of tens of nanoseconds that the traced process pays for. Needs
 *    kernel BTF and Linux 6.2 or later.
 *  - the compat object (built with VIGIL_COMPAT) reads through
 *    bpf_probe_read_kernel, for older kernels and --btf.
 *
 * KREAD(src, a, b) is src->a->b, KREAD_INTO(dst, src, a) copies src->a
 * into *dst, and KCAST(T, addr) is addr as a readable T*. Chains that index
 * an array with a variable use BPF_CORE_READ in both objects (a plain load
 * needs a constant offset).
 */
#ifdef VIGIL_COMPAT
#define KREAD(...) BPF_CORE_READ(__VA_ARGS__)
#define KREAD_INTO(dst, ...) BPF_CORE_READ_INTO(dst, __VA_ARGS__)
#define KCAST(T, addr) ((T *)(addr))
static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}
#else
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define KREAD(...) ___arrow(__VA_ARGS__)
#define KREAD_INTO(dst, ...) (*(dst) = ___arrow(__VA_ARGS__))
#define KCAST(T, addr) ((T *)bpf_rdonly_cast((void *)(addr), bpf_core_type_id_kernel(T)))
static __always_inline struct task_struct *current_task(void)
{
	return bpf_get_current_task_btf();
}
#endif

/* KCONTAINER is container_of for kernel pointers in either object. */
#define KCONTAINER(ptr, T, member) KCAST(T, (unsigned long)(ptr) - bpf_core_field_offset(T, member))

/*
 * The cgroup v1 controller whose hierarchy names containers on a cgroup v1
 * host (an enum cgroup_subsys_id), or VIGIL_NO_SUBSYS. Set before load, so
 * the verifier sees a constant and subsys[] is read at a fixed offset.
 */
const volatile __u32 cgroup_v1_subsys = VIGIL_NO_SUBSYS;

/*
 * Strings are appended to the scratch record at an offset that is masked to
 * the first half of the buffer, and each copy is bounded by STR_MASK, so the
 * verifier can prove every write stays inside the buffer.
 */
#define SCRATCH_HALF 16384
#define STR_MASK 8191
#define SCRATCH_SIZE (2 * SCRATCH_HALF)
#define NAME_MAX_LEN 256
#define PATH_DEPTH 48
#define SOCKADDR_MAX 112

#define AT_FDCWD_VAL -100
#define S_IFMT_VAL 00170000
#define S_IFSOCK_VAL 0140000
#define S_IFDIR_VAL 0040000
#define S_IFIFO_VAL 0010000
#define S_IFCHR_VAL 0020000
#define S_IFREG_VAL 0100000
#define FMODE_CREATED_VAL 0x100000
#define AF_UNIX_VAL 1
#define AF_INET_VAL 2
#define AF_INET6_VAL 10
#define AF_PACKET_VAL 17
#define SOCK_DGRAM_VAL 2
#define SOCK_RAW_VAL 3
#define IPPROTO_UDP_VAL 17
#define IPPROTO_TCP_VAL 6
#define PROT_EXEC_VAL 4
#define DNS_PORT 53

/*
 * AT(x) is a buffer offset the verifier can bound. The barrier stops clang
 * from dropping the mask after it has proven x < SCRATCH_HALF itself.
 */
#define AT(x) ({ __u64 _v = (x); barrier_var(_v); _v & (SCRATCH_HALF - 1); })

struct scratch {
	__u8 buf[SCRATCH_SIZE];
};

/* Arguments remembered at sys_enter until the matching sys_exit. */
struct inflight {
	__u64 args[6];
	__u32 sys;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); /* replaced from config before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/*
 * State of the dentry walk: the write cursor and the walk's position, as
 * plain numbers. Kept in map memory, not registers, so the verifier sees
 * unknown scalars at every loop iteration and can prune; register-held
 * offsets or typed pointers make each branch a new state and the walk's
 * verification explodes. (Not in struct scratch: per-CPU values are capped
 * at 32 KiB.)
 */
struct walk_state {
	__u64 dentry;
	__u64 mnt; /* struct mount */
	__u64 mnt_root;
	__u64 root_dentry;
	__u64 root_mnt; /* struct vfsmount */
	__u32 cur;
	__u32 end; /* how the last walk ended: enum walk_end */
};

/*
 * How a dentry walk ended. WALK_OUTSIDE_ROOT means the file cannot be
 * reached from the task's root: a file on a detached mount (a runtime's
 * sealed copy of itself), an internal mount (memfd, pipe) or outside a
 * chroot or container root.
 */
enum walk_end {
	WALK_AT_ROOT = 0,
	WALK_OUTSIDE_ROOT = 1,
	WALK_TOO_DEEP = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_state);
} walk_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rec_config);
} config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct rec_proc_state);
} proc_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rec_file_key);
	__type(value, __u8);
} ignored_binaries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} ignored_cgroups SEC(".maps");

/* Exported so bpf2go generates the Go mirrors of every record type. */
const struct rec_exec *unused_exec __attribute__((unused));
const struct rec_fork *unused_fork __attribute__((unused));
const struct rec_exit *unused_exit __attribute__((unused));
const struct rec_syscall *unused_syscall __attribute__((unused));
const struct rec_open *unused_open __attribute__((unused));
const struct rec_sock *unused_sock __attribute__((unused));
const struct rec_dns *unused_dns __attribute__((unused));
const struct rec_dup *unused_dup __attribute__((unused));
const enum rec_type *unused_rec __attribute__((unused));
const enum rec_sys *unused_sys __attribute__((unused));
const enum rec_fd_kind *unused_fd_kind __attribute__((unused));
const enum rec_execveat *unused_execveat __attribute__((unused));
const enum rec_counter *unused_counter __attribute__((unused));
const enum rec_cfg_flag *unused_cfg_flag __attribute__((unused));

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);
	if (v)
		*v += 1;
}

static __always_inline struct rec_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config_map, &zero);
}

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

/*
 * current_cgroup_id names the current task's cgroup: its unified (v2) cgroup
 * id, or on a cgroup v1 host, where every task is in the unified root, the id
 * of its cgroup in one v1 controller's hierarchy, so containers still have
 * ids of their own.
 */
static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	__u32 ss = cgroup_v1_subsys;
	if (ss >= 32) /* VIGIL_NO_SUBSYS, and a bound for the verifier */
		return bpf_get_current_cgroup_id();
	struct cgroup_subsys_state *css = NULL;
#ifdef VIGIL_COMPAT
	struct css_set *cs = BPF_CORE_READ(t, cgroups);
	bpf_core_read(&css, sizeof(css), &cs->subsys[ss]);
#else
	css = t->cgroups->subsys[ss];
#endif
	if (!css)
		return bpf_get_current_cgroup_id();
	return KREAD(css, cgroup, kn, id);
}

static __always_inline __u64 current_cgroup_id(void)
{
	return task_cgroup_id(current_task());
}

/*
 * wanted applies the in-kernel filters for the current process: the sensor
 * itself, ignored cgroups and binaries, and the per-process token bucket
 * (skipped when exempt, so exits are never rate limited).
 */
static __always_inline bool wanted(struct rec_config *cfg, __u32 tgid, bool exempt)
{
	if (tgid == cfg->sensor_tgid)
		return false;
	__u32 flags = cfg->flags;
	if (!flags)
		return true;
	if (flags & VIGIL_CFG_IGNORE_CGROUPS) {
		__u64 cg = current_cgroup_id();
		if (bpf_map_lookup_elem(&ignored_cgroups, &cg)) {
			count(VIGIL_CNT_IGNORED);
			return false;
		}
	}
	if (!(flags & (VIGIL_CFG_IGNORE_BINARIES | VIGIL_CFG_RATE_LIMIT)))
		return true;
	struct rec_proc_state *st = bpf_map_lookup_elem(&proc_state, &tgid);
	if (!st) {
		if (!(flags & VIGIL_CFG_RATE_LIMIT))
			return true;
		struct rec_proc_state init = {};
		init.last_ns = bpf_ktime_get_ns();
		init.tokens = (__u64)cfg->rate_burst * 1000000000ULL;
		bpf_map_update_elem(&proc_state, &tgid, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&proc_state, &tgid);
		if (!st)
			return true;
	}
	if (st->ignored) {
		count(VIGIL_CNT_IGNORED);
		return false;
	}
	if (exempt || !(flags & VIGIL_CFG_RATE_LIMIT))
		return true;
	/* Token bucket in units of 1e-9 tokens so refill is integer math. */
	__u64 now = bpf_ktime_get_ns();
	__u64 max = (__u64)cfg->rate_burst * 1000000000ULL;
	__u64 elapsed = now - st->last_ns;
	__u64 tokens = st->tokens + elapsed * cfg->rate_per_sec;
	if (tokens > max || elapsed > 1000000000000ULL)
		tokens = max;
	st->last_ns = now;
	if (tokens < 1000000000ULL) {
		st->tokens = tokens;
		count(VIGIL_CNT_RATE_LIMITED);
		return false;
	}
	st->tokens = tokens - 1000000000ULL;
	return true;
}

/* fill_hdr sets the common header; strings are counted as they are added. */
static __always_inline void fill_hdr(struct rec_hdr *h, __u16 type, __u16 sys, __u16 fixed)
{
	struct task_struct *t = current_task();
	h->ts = bpf_ktime_get_boot_ns();
	h->cgroup_id = task_cgroup_id(t);
	h->ret = 0;
#ifdef VIGIL_COMPAT
	__u64 id = bpf_get_current_pid_tgid();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
#else
	h->pid = t->tgid;
	h->tid = t->pid;
	__builtin_memcpy(h->comm, t->comm, sizeof(h->comm));
#endif
	h->type = type;
	h->sys = sys;
	h->fixed = fixed;
	h->nstr = 0;
#pragma unroll
	for (int i = 0; i < VIGIL_MAX_STRS; i++)
		h->str_len[i] = 0;
}

/*
 * submit copies the finished record into the ring buffer. Wakeups are
 * batched: the reader is only woken once cfg->wakeup_bytes are pending, and
 * it polls on a short timer for the rest, which keeps the per-event cost of a
 * wakeup (an irq_work and a context switch) off the traced process.
 */
static __always_inline void submit(struct rec_config *cfg, struct scratch *s, __u32 off)
{
	struct rec_hdr *h = (void *)s->buf;
	/* Offsets never reach SCRATCH_SIZE (see put_*); the mask is for the verifier. */
	__u64 size = off & (SCRATCH_SIZE - 1);
	h->size = size;
	/*
	 * Wake only when this record crosses the threshold: a reader that is
	 * behind is already awake and draining, and waking it again for every
	 * record would cost the traced process an irq_work each time.
	 */
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (avail < cfg->wakeup_bytes && avail + size >= cfg->wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, s->buf, size, flags) != 0)
		count(VIGIL_CNT_LOST);
}

/* set_len records the length of string idx and returns the new offset. */
static __always_inline __u32 set_len(struct scratch *s, __u32 off, int idx, long n)
{
	struct rec_hdr *h = (void *)s->buf;
	if (n < 0)
		n = 0;
	if (idx >= 0 && idx < VIGIL_MAX_STRS) {
		h->str_len[idx] = n;
		if (h->nstr <= idx)
			h->nstr = idx + 1;
	}
	return off + n;
}

static __always_inline __u32 put_user_str(struct scratch *s, __u32 off, int idx, const void *p, __u32 max)
{
	if (!p || off >= SCRATCH_HALF)
		return set_len(s, off, idx, 0);
	long n = bpf_probe_read_user_str(&s->buf[AT(off)], max & STR_MASK, p);
	return set_len(s, off, idx, n);
}

static __always_inline __u32 put_kernel_str(struct scratch *s, __u32 off, int idx, const void *p, __u32 max)
{
	if (!p || off >= SCRATCH_HALF)
		return set_len(s, off, idx, 0);
	long n = bpf_probe_read_kernel_str(&s->buf[AT(off)], max & STR_MASK, p);
	return set_len(s, off, idx, n);
}

static __always_inline __u32 put_user_bytes(struct scratch *s, __u32 off, int idx, const void *p, __u32 len)
{
	if (!p || off >= SCRATCH_HALF)
		return set_len(s, off, idx, 0);
	__u64 n = len;
	barrier_var(n);
	n &= STR_MASK;
	if (bpf_probe_read_user(&s->buf[AT(off)], n, p) != 0)
		n = 0;
	return set_len(s, off, idx, n);
}

/*
 * dentry_step reads a dentry's parent and name pointer. In the compat
 * object each helper call costs the traced process tens of nanoseconds, so
 * where the kernel keeps d_parent and d_name next to each other (it has for
 * many years) one read fetches both; CO-RE offsets decide, at load time.
 */
struct dentry_head {
	struct dentry *parent;
	__u64 hash_len;
	const unsigned char *name;
};

static __always_inline void dentry_step(struct dentry *d, struct dentry **parent, const unsigned char **name)
{
#ifndef VIGIL_COMPAT
	*parent = d->d_parent;
	*name = d->d_name.name;
#else
	__u32 po = bpf_core_field_offset(struct dentry, d_parent);
	__u32 no = bpf_core_field_offset(struct dentry, d_name.name);
	if (no == po + 16) {
		struct dentry_head dh = {};
		bpf_probe_read_kernel(&dh, sizeof(dh), (void *)d + po);
		*parent = dh.parent;
		*name = dh.name;
		return;
	}
	*parent = BPF_CORE_READ(d, d_parent);
	*name = BPF_CORE_READ(d, d_name.name);
#endif
}

#ifndef VIGIL_COMPAT
/* Before 6.14 the inline name was a plain array (32 or 40 bytes). */
struct dentry___iname {
	unsigned char d_iname[40];
} __attribute__((preserve_access_index));

#define INLINE_WORDS 5

/*
 * copy_inline_name copies the name of d into the scratch buffer at o with
 * plain loads when the kernel keeps it inside the dentry (names shorter than
 * 32 or 40 bytes: nearly all of them), and returns its length with the NUL;
 * 0 means the caller copies it with a helper. Whole words are copied: the
 * bytes past the NUL are overwritten by the next component or lie past the
 * record's end.
 */
static __always_inline long copy_inline_name(struct scratch *s, __u32 o, struct dentry *d)
{
	__u64 name = (__u64)d->d_name.name;
	__u32 len = d->d_name.len;
	__u64 *out = (__u64 *)&s->buf[AT(o)];
	if (bpf_core_field_exists(d->d_shortname)) {
		if (name != (__u64)d + bpf_core_field_offset(d->d_shortname) ||
		    len >= bpf_core_field_size(d->d_shortname) || len >= INLINE_WORDS * 8)
			return 0;
		out[0] = d->d_shortname.words[0];
		if (len >= 8)
			out[1] = d->d_shortname.words[1];
		if (len >= 16)
			out[2] = d->d_shortname.words[2];
		if (len >= 24)
			out[3] = d->d_shortname.words[3];
		if (len >= 32)
			out[4] = d->d_shortname.words[4];
	} else if (bpf_core_field_exists(((struct dentry___iname *)d)->d_iname)) {
		struct dentry___iname *di = (void *)d;
		__u32 size = bpf_core_field_size(di->d_iname);
		if (name != (__u64)d + bpf_core_field_offset(di->d_iname) || len >= size || len >= INLINE_WORDS * 8)
			return 0;
		out[0] = *(__u64 *)&di->d_iname[0];
		if (len >= 8)
			out[1] = *(__u64 *)&di->d_iname[8];
		if (len >= 16)
			out[2] = *(__u64 *)&di->d_iname[16];
		if (len >= 24)
			out[3] = *(__u64 *)&di->d_iname[24];
		if (len >= 32 && size >= 40)
			out[4] = *(__u64 *)&di->d_iname[32];
	} else {
		return 0;
	}
	s->buf[AT(o + len)] = 0;
	return len + 1;
}
#endif

/*
 * put_path writes the path of a dentry as NUL-terminated components, leaf
 * first; user space reverses them. Mount points are crossed through the
 * mount's parent, and the walk stops at the current task's root directory
 * (as d_path does), so a process in a container sees /etc/passwd, not the
 * host path of its rootfs: after pivot_root the container's root mount still
 * has a parent in the host's tree. The walk is bounded by PATH_DEPTH.
 */
static __noinline __u32 put_path(struct scratch *s, __u32 off, int idx, struct dentry *dentry, struct vfsmount *vfsmnt)
{
	__u32 zero = 0;
	struct walk_state *w = bpf_map_lookup_elem(&walk_map, &zero);
	if (!w)
		return set_len(s, off, idx, 0);
	struct path root = {};
	KREAD_INTO(&root, current_task(), fs, root);
	__u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
	w->cur = off;
	w->dentry = (__u64)dentry;
	w->mnt = (__u64)vfsmnt - mnt_off;
	w->mnt_root = (__u64)KREAD(vfsmnt, mnt_root);
	w->root_dentry = (__u64)root.dentry;
	w->root_mnt = (__u64)root.mnt;
	w->end = WALK_TOO_DEEP;

	for (int i = 0; i < PATH_DEPTH; i++) {
		struct dentry *parent;
		const unsigned char *name;
		if (w->dentry == w->root_dentry && w->mnt + mnt_off == w->root_mnt) {
			w->end = WALK_AT_ROOT; /* the task's root directory */
			break;
		}
		struct dentry *d = KCAST(struct dentry, w->dentry);
		dentry_step(d, &parent, &name);
		if (w->dentry == w->mnt_root || w->dentry == (__u64)parent) {
			if (w->dentry != w->mnt_root) {
				w->end = WALK_OUTSIDE_ROOT;
				break; /* a dentry outside any mount (pipe, socket, anon) */
			}
			struct mount *mnt = KCAST(struct mount, w->mnt);
			__u64 mp = (__u64)KREAD(mnt, mnt_parent);
			if (mp == w->mnt) {
				w->end = WALK_OUTSIDE_ROOT;
				break; /* the namespace root, or a detached mount */
			}
			w->dentry = (__u64)KREAD(mnt, mnt_mountpoint);
			w->mnt = mp;
			struct mount *parent_mnt = KCAST(struct mount, mp);
			w->mnt_root = (__u64)KREAD(parent_mnt, mnt.mnt_root);
			continue;
		}
		__u32 o = w->cur;
		if (o >= SCRATCH_HALF)
			break;
#ifdef VIGIL_COMPAT
		long n = bpf_probe_read_kernel_str(&s->buf[AT(o)], NAME_MAX_LEN, name);
#else
		long n = copy_inline_name(s, o, d);
		if (!n)
			n = bpf_probe_read_kernel_str(&s->buf[AT(o)], NAME_MAX_LEN, name);
#endif
		if (n <= 0)
			break;
		w->cur = o + n;
		w->dentry = (__u64)parent;
	}
	__u32 end = w->cur;
	if (end == off && end < SCRATCH_HALF) {
		/* The root itself, or a detached dentry: its own name. */
		/* (through a local: a cast inside KREAD would relocate w's fields too) */
		struct dentry *d = KCAST(struct dentry, w->dentry);
		const unsigned char *name = KREAD(d, d_name.name);
		long n = w->end == WALK_AT_ROOT ? 0 : bpf_probe_read_kernel_str(&s->buf[AT(end)], NAME_MAX_LEN, name);
		if (n <= 0 || (n == 2 && s->buf[AT(end)] == '/')) {
			s->buf[AT(end)] = 0;
			n = 1;
		}
		end += n;
	}
	return set_len(s, off, idx, end - off);
}

/* last_walk_end says how this CPU's last put_path ended (enum walk_end). */
static __always_inline __u32 last_walk_end(void)
{
	__u32 zero = 0;
	struct walk_state *w = bpf_map_lookup_elem(&walk_map, &zero);
	return w ? w->end : WALK_TOO_DEEP;
}

static __always_inline __u32 put_file_path(struct scratch *s, __u32 off, int idx, struct file *f)
{
	if (!f)
		return set_len(s, off, idx, 0);
	struct path p = {};
	KREAD_INTO(&p, f, f_path);
	return put_path(s, off, idx, p.dentry, p.mnt);
}

static __always_inline __u32 put_cwd(struct scratch *s, __u32 off, int idx, struct task_struct *t)
{
	struct path pwd = {};
	KREAD_INTO(&pwd, t, fs, pwd);
	return put_path(s, off, idx, pwd.dentry, pwd.mnt);
}

/*
 * fd_file returns the struct file of fd in task t, or NULL. (In the direct
 * object a NULL is still a typed pointer, so callers may read through it:
 * the loads fault safely and give zeros.)
 */
static __always_inline struct file *fd_file(struct task_struct *t, long fd)
{
	struct file *f = NULL;
#ifndef VIGIL_COMPAT
	struct fdtable *fdt = t->files->fdt;
	if (fd < 0 || (unsigned long)fd >= fdt->max_fds)
		return KCAST(struct file, f);
	/*
	 * fdt->fd[fd] is a struct file * in an array the verifier has no
	 * type for. struct kiocb starts with one (ki_filp; CO-RE gives its
	 * offset either way), so the slot read as a kiocb's ki_filp is a plain
	 * load that yields a typed pointer, where bpf_probe_read_kernel would
	 * cost a helper call.
	 */
	struct kiocb *slot = KCAST(struct kiocb, (unsigned long)&fdt->fd[fd] - bpf_core_field_offset(struct kiocb, ki_filp));
	return slot->ki_filp;
#else
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	unsigned int max;
	struct file **fds;
	__u32 mo = bpf_core_field_offset(struct fdtable, max_fds);
	__u32 fo = bpf_core_field_offset(struct fdtable, fd);
	if (mo == 0 && fo == 8) {
		/* struct fdtable starts { max_fds; fd; }: one read for both. */
		struct {
			unsigned int max_fds;
			struct file **fd;
		} head = {};
		bpf_probe_read_kernel(&head, sizeof(head), fdt);
		max = head.max_fds;
		fds = head.fd;
	} else {
		max = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
	}
	if ((unsigned long)fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
#endif
}

/*
 * put_base_for writes the directory a relative path is resolved against
 * (the dirfd's file, or the cwd for AT_FDCWD) when the path, whose first
 * character is first, is relative, and an empty string otherwise.
 */
static __always_inline __u32 put_base_for(struct scratch *s, __u32 off, int idx, long dfd, char first)
{
	if (first == '/')
		return set_len(s, off, idx, 0);
	struct task_struct *t = current_task();
	if ((int)dfd == AT_FDCWD_VAL)
		return put_cwd(s, off, idx, t);
	return put_file_path(s, off, idx, fd_file(t, dfd));
}

/* put_base is put_base_for a path in user memory. */
static __always_inline __u32 put_base(struct scratch *s, __u32 off, int idx, long dfd, const char *upath)
{
	char c = '/';
	if (upath)
		bpf_probe_read_user(&c, 1, upath);
	return put_base_for(s, off, idx, dfd, c);
}

static __always_inline struct sock *file_sock(struct file *f)
{
	if (!f)
		return NULL;
	umode_t mode = KREAD(f, f_inode, i_mode);
	if ((mode & S_IFMT_VAL) != S_IFSOCK_VAL)
		return NULL;
	struct socket *sock = KCAST(struct socket, KREAD(f, private_data));
	return KREAD(sock, sk);
}

/* sock_remote reads the peer address of a socket from the kernel. */
static __always_inline void sock_remote(struct sock *sk, struct rec_sockaddr *a)
{
	__u16 fam = KREAD(sk, __sk_common.skc_family);
	a->family = fam;
	a->port = bpf_ntohs(KREAD(sk, __sk_common.skc_dport));
	if (fam == AF_INET_VAL) {
		__be32 ip = KREAD(sk, __sk_common.skc_daddr);
		__builtin_memcpy(a->addr, &ip, 4);
	} else if (fam == AF_INET6_VAL) {
		bpf_core_read(&a->addr, sizeof(a->addr), &sk->__sk_common.skc_v6_daddr);
	}
}

static __always_inline void sock_local(struct sock *sk, struct rec_sockaddr *a)
{
	__u16 fam = KREAD(sk, __sk_common.skc_family);
	a->family = fam;
	a->port = KREAD(sk, __sk_common.skc_num);
	if (fam == AF_INET_VAL) {
		__be32 ip = KREAD(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(a->addr, &ip, 4);
	} else if (fam == AF_INET6_VAL) {
		bpf_core_read(&a->addr, sizeof(a->addr), &sk->__sk_common.skc_v6_rcv_saddr);
	}
}

static __always_inline void fd_info(struct file *f, struct rec_fdinfo *fi)
{
	if (!f) {
		fi->kind = VIGIL_FD_NONE;
		return;
	}
	umode_t mode = KREAD(f, f_inode, i_mode) & S_IFMT_VAL;
	switch (mode) {
	case S_IFSOCK_VAL: {
		fi->kind = VIGIL_FD_SOCKET;
		struct socket *sock = KCAST(struct socket, KREAD(f, private_data));
		struct sock *sk = KREAD(sock, sk);
		fi->stype = KREAD(sock, type);
		fi->proto = KREAD(sk, sk_protocol);
		sock_remote(sk, &fi->remote);
		break;
	}
	case S_IFIFO_VAL:
		fi->kind = VIGIL_FD_PIPE;
		break;
	case S_IFDIR_VAL:
		fi->kind = VIGIL_FD_DIR;
		break;
	case S_IFREG_VAL:
		fi->kind = VIGIL_FD_FILE;
		break;
	case S_IFCHR_VAL: {
		/* tty majors: 4 (vt, ttyS), 5 (tty, ptmx), 136-143 (pts). */
		dev_t rdev = KREAD(f, f_inode, i_rdev);
		__u32 major = rdev >> 20;
		fi->kind = (major == 4 || major == 5 || (major >= 136 && major <= 143)) ? VIGIL_FD_TTY : VIGIL_FD_CHAR;
		break;
	}
	default:
		fi->kind = VIGIL_FD_OTHER;
	}
}

/*
 * remember stores the first nargs syscall arguments for the matching exit.
 * Only the arguments the syscall has may be read: the kernel refuses to
 * attach a program that reads past the end of its tracepoint's record
 * (EACCES). nargs is a constant at every call site, so the reads fold away.
 */
static __always_inline int remember(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	struct inflight in = {};
	in.sys = sys;
	/* One load per argument: the verifier rejects a derived ctx pointer. */
	in.args[0] = ctx->args[0];
	if (nargs > 1)
		in.args[1] = ctx->args[1];
	if (nargs > 2)
		in.args[2] = ctx->args[2];
	if (nargs > 3)
		in.args[3] = ctx->args[3];
	if (nargs > 4)
		in.args[4] = ctx->args[4];
	if (nargs > 5)
		in.args[5] = ctx->args[5];
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&inflight_map, &tid, &in, BPF_ANY) != 0)
		count(VIGIL_CNT_INFLIGHT_FULL);
	return 0;
}

/* recall returns and forgets the arguments stored at enter. */
static __always_inline bool recall(struct inflight *out, __u32 sys)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight_map, &tid);
	if (!in)
		return false;
	__builtin_memcpy(out, in, sizeof(*out));
	bpf_map_delete_elem(&inflight_map, &tid);
	/* A stale entry from a syscall whose exit was missed is dropped. */
	return out->sys == sys;
}

/*
 * enter_filter applies the in-kernel filters to a syscall: in the compat
 * object at sys_enter, before the arguments are remembered; in the direct
 * object at sys_exit.
 */
static __always_inline struct rec_config *enter_filter(void)
{
	struct rec_config *cfg = get_config();
	if (!cfg)
		return NULL;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!wanted(cfg, tgid, false))
		return NULL;
	return cfg;
}

#ifndef VIGIL_COMPAT
/* Set before load from the sensor's GOARCH: the layout of struct pt_regs. */
const volatile __u32 target_arm64 = 0;

/*
 * syscall_args reads the current syscall's arguments from the user
 * registers the kernel saved at syscall entry, so the direct object needs no
 * sys_enter programs: a traced syscall crosses one tracepoint, not two, and
 * no per-thread map entry pairs enter with exit. The saved registers keep
 * the arguments until sys_exit: only the result register changes (arm64
 * puts the result in x0 and keeps the first argument in orig_x0), and the
 * sys_exit tracepoint runs before a ptracer's syscall-exit stop could edit
 * them.
 */
static __always_inline void syscall_args(struct inflight *in, __u32 sys)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	in->sys = sys;
	in->_pad = 0;
	if (target_arm64) {
		/* UAPI layout: u64 regs[31], sp, pc, pstate, then orig_x0. */
		bpf_probe_read_kernel(in->args, sizeof(in->args), regs);
		bpf_probe_read_kernel(&in->args[0], sizeof(in->args[0]), (void *)regs + 34 * 8);
		return;
	}
	in->args[0] = regs->di;
	in->args[1] = regs->si;
	in->args[2] = regs->dx;
	in->args[3] = regs->r10;
	in->args[4] = regs->r8;
	in->args[5] = regs->r9;
}
#endif

/*
 * exit_args gives a sys_exit program its syscall's arguments, or false when
 * the call is not to be reported: the compat object takes them from its
 * sys_enter program (remember), the direct object reads them from the saved
 * registers and applies the filters here.
 */
static __always_inline bool exit_args(struct inflight *in, __u32 sys)
{
#ifdef VIGIL_COMPAT
	return recall(in, sys);
#else
	if (!enter_filter())
		return false;
	syscall_args(in, sys);
	return true;
#endif
}

#endif
