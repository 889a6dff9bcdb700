//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network probes: connect, accept, bind and listen for inet and unix
 * sockets; socket() for packet and raw sockets; DNS queries and answers
 * (UDP payloads to or from port 53, copied for user space to parse); and
 * dup of a socket onto fds 0-2 with its peer. Compiled as part of
 * vigil.bpf.c.
 */
#include "common.h"

struct user_msghdr_min {
	void *name;
	int namelen;
	int _pad;
	struct iovec *iov;
	__u64 iovlen;
};

/* Size of struct mmsghdr on 64-bit: a user_msghdr (56 bytes) and msg_len. */
#define MMSGHDR_SIZE 64

static __always_inline struct sock *current_fd_sock(long fd)
{
	return file_sock(fd_file(current_task(), fd));
}

static __always_inline __u16 user_sockaddr_port(const void *addr)
{
	__u16 fp[2] = {};
	if (!addr || bpf_probe_read_user(fp, sizeof(fp), addr) != 0)
		return 0;
	if (fp[0] != AF_INET_VAL && fp[0] != AF_INET6_VAL)
		return 0;
	return bpf_ntohs(fp[1]);
}

static __always_inline bool is_udp(struct sock *sk)
{
	return sk && KREAD(sk, sk_protocol) == IPPROTO_UDP_VAL;
}

static __always_inline bool is_tcp(struct sock *sk)
{
	return sk && KREAD(sk, sk_protocol) == IPPROTO_TCP_VAL;
}

static __always_inline __u16 sk_dport(struct sock *sk)
{
	return bpf_ntohs(KREAD(sk, __sk_common.skc_dport));
}

/*
 * sock_facts fills r's family, type, protocol and addresses from the socket
 * behind f, and returns it (NULL when f is not a socket).
 */
static __always_inline struct sock *sock_facts(struct rec_sock *r, struct file *f)
{
	struct sock *sk = file_sock(f);
	if (!sk)
		return NULL;
	struct socket *sock = KCAST(struct socket, KREAD(f, private_data));
	r->family = KREAD(sk, __sk_common.skc_family);
	r->stype = KREAD(sock, type);
	r->proto = KREAD(sk, sk_protocol);
	sock_remote(sk, &r->remote);
	sock_local(sk, &r->local);
	return sk;
}

/* sock_emit builds the record of connect, accept, bind, listen and socket. */
static __always_inline int sock_emit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
	if (!exit_args(&in, sys))
		return 0;
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	struct rec_sock *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_SOCK, sys, sizeof(*r));
	long ret = ctx->ret;
	r->h.ret = ret;
	__builtin_memset(&r->remote, 0, sizeof(r->remote));
	__builtin_memset(&r->local, 0, sizeof(r->local));
	r->fd = in.args[0];
	r->arg = 0;
	r->family = 0;
	r->stype = 0;
	r->proto = 0;
	r->_pad = 0;
	__u32 off = sizeof(*r);
	long sockfd = in.args[0];
	if (sys == VIGIL_SYS_SOCKET) {
		r->fd = ret;
		r->family = in.args[0];
		r->stype = in.args[1] & 0xf;
		r->proto = in.args[2];
		r->arg = in.args[1];
		submit(cfg, s, off);
		return 0;
	}
	if (sys == VIGIL_SYS_ACCEPT || sys == VIGIL_SYS_ACCEPT4) {
		r->arg = ret;
		if (ret >= 0)
			sockfd = ret;
	}
	if (sys == VIGIL_SYS_LISTEN)
		r->arg = in.args[1];
	struct sock *sk = sock_facts(r, fd_file(current_task(), sockfd));
	if (sys == VIGIL_SYS_CONNECT || sys == VIGIL_SYS_BIND) {
		__u32 len = in.args[2];
		if (len > SOCKADDR_MAX)
			len = SOCKADDR_MAX;
		off = put_user_bytes(s, off, 0, (void *)in.args[1], len);
	}
	if (sys == VIGIL_SYS_CONNECT && ret == 0 && sk && r->family == AF_UNIX_VAL) {
		/*
		 * String 1: the socket file the kernel connected to, as the
		 * listener bound it, whatever symlink, hard link, relative path
		 * or bind mount the caller named it by.
		 */
		struct unix_sock *u = KCAST(struct unix_sock, sk);
		struct unix_sock *peer = KCAST(struct unix_sock, KREAD(u, peer));
		struct path p = {};
		KREAD_INTO(&p, peer, path);
		if (p.dentry)
			off = put_path(s, off, 1, p.dentry, p.mnt);
	}
	submit(cfg, s, off);
	return 0;
}

#define SOCK_PAIR(name, SYS, N) PROBE_PAIR(name, SYS, N, remember_filtered, sock_emit)

SOCK_PAIR(connect, VIGIL_SYS_CONNECT, 3)
SOCK_PAIR(accept, VIGIL_SYS_ACCEPT, 3)
SOCK_PAIR(accept4, VIGIL_SYS_ACCEPT4, 4)
SOCK_PAIR(bind, VIGIL_SYS_BIND, 3)
SOCK_PAIR(listen, VIGIL_SYS_LISTEN, 2)

/* socket(): only packet sockets and raw sockets matter to detection. */
static __always_inline bool socket_wanted(__u64 family, __u64 type)
{
	return family == AF_PACKET_VAL || (type & 0xf) == SOCK_RAW_VAL;
}

#ifdef VIGIL_COMPAT
static __always_inline int socket_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!socket_wanted(ctx->args[0], ctx->args[1]))
		return 0;
	return remember_filtered(ctx, sys, nargs);
}
#endif

static __always_inline int socket_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
#ifndef VIGIL_COMPAT
	struct inflight in;
	syscall_args(&in, sys);
	if (!socket_wanted(in.args[0], in.args[1]))
		return 0;
#endif
	return sock_emit(ctx, sys);
}

PROBE_PAIR(socket, VIGIL_SYS_SOCKET, 3, socket_enter, socket_exit)

/*
 * dns_emit copies one UDP payload. server is a user sockaddr (may be NULL,
 * then the socket's peer is used).
 */
static __always_inline void dns_emit2(struct rec_config *cfg, struct scratch *s, __u32 sys, long ret, long fd,
				      const void *payload, __u64 len, const void *payload2, __u64 len2,
				      const void *server, __u8 answer)
{
	struct rec_dns *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_DNS, sys, sizeof(*r));
	r->h.ret = ret;
	r->fd = fd;
	r->answer = answer;
	r->tcp = is_tcp(current_fd_sock(fd));
	r->_pad[0] = r->_pad[1] = 0;
	if (r->tcp && !payload2 && len <= 2)
		return; /* a TCP length prefix sent on its own; its message follows */
	__builtin_memset(&r->server, 0, sizeof(r->server));
	struct vigil_sockaddr_in6_min {
		__u16 family;
		__u16 port;
		__u32 a4_or_flow;
		__u8 a6[16];
	} sa = {};
	if (server && bpf_probe_read_user(&sa, sizeof(sa), server) == 0 &&
	    (sa.family == AF_INET_VAL || sa.family == AF_INET6_VAL)) {
		r->server.family = sa.family;
		r->server.port = bpf_ntohs(sa.port);
		if (sa.family == AF_INET_VAL)
			__builtin_memcpy(r->server.addr, &sa.a4_or_flow, 4);
		else
			__builtin_memcpy(r->server.addr, sa.a6, 16);
	} else {
		struct sock *sk = current_fd_sock(fd);
		if (sk)
			sock_remote(sk, &r->server);
	}
	if (len > cfg->dns_max)
		len = cfg->dns_max;
	__u32 off = put_user_bytes(s, sizeof(*r), 0, payload, len);
	if (payload2 && off < SCRATCH_HALF) {
		/* TCP framing in two buffers: the message follows its length. */
		__u64 room = cfg->dns_max - (off - sizeof(*r));
		if (len2 > room)
			len2 = room;
		barrier_var(len2);
		len2 &= STR_MASK;
		if (bpf_probe_read_user(&s->buf[AT(off)], len2, payload2) == 0)
			off = set_len(s, sizeof(*r), 0, off - sizeof(*r) + len2);
	}
	submit(cfg, s, off);
}

static __always_inline void dns_emit(struct rec_config *cfg, struct scratch *s, __u32 sys, long ret, long fd,
				     const void *payload, __u64 len, const void *server, __u8 answer)
{
	dns_emit2(cfg, s, sys, ret, fd, payload, len, NULL, 0, server, answer);
}

/*
 * dns_send_wanted keeps a send only when it goes to port 53: over UDP to the
 * address it names (sendto's, or the first message's of sendmsg and
 * sendmmsg), else to the socket's peer; over TCP to the stream's peer.
 */
static __always_inline bool dns_send_wanted(__u32 sys, __u64 fd, __u64 a1, __u64 a4)
{
	struct sock *sk = current_fd_sock(fd);
	if (is_tcp(sk))
		return sk_dport(sk) == DNS_PORT; /* DNS over TCP: a connected stream */
	if (!is_udp(sk))
		return false;
	__u16 port = 0;
	if (sys == VIGIL_SYS_SENDTO && a4) {
		port = user_sockaddr_port((void *)a4);
	} else if (sys == VIGIL_SYS_SENDMSG || sys == VIGIL_SYS_SENDMMSG) {
		void *name = NULL;
		bpf_probe_read_user(&name, sizeof(name), (void *)a1);
		if (name)
			port = user_sockaddr_port(name);
	}
	if (!port)
		port = sk_dport(sk);
	return port == DNS_PORT;
}

#ifdef VIGIL_COMPAT
static __always_inline int dns_send_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!dns_send_wanted(sys, ctx->args[0], ctx->args[1], sys == VIGIL_SYS_SENDTO ? ctx->args[4] : 0))
		return 0;
	return remember_filtered(ctx, sys, nargs);
}
#endif

static __always_inline void dns_msghdr(struct rec_config *cfg, struct scratch *s, __u32 sys, long ret, long fd,
				       const void *msgp, __u64 len, __u8 answer)
{
	struct user_msghdr_min m = {};
	if (bpf_probe_read_user(&m, sizeof(m), msgp) != 0 || !m.iov || !m.iovlen)
		return;
	struct iovec iov = {};
	if (bpf_probe_read_user(&iov, sizeof(iov), m.iov) != 0)
		return;
	if (!answer || len > iov.iov_len)
		len = iov.iov_len;
	if (answer && m.name && user_sockaddr_port(m.name) != DNS_PORT)
		return;
	dns_emit(cfg, s, sys, ret, fd, iov.iov_base, len, m.name, answer);
}

static __always_inline int dns_send_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
#ifdef VIGIL_COMPAT
	if (!recall(&in, sys))
		return 0;
#else
	syscall_args(&in, sys);
	if (!dns_send_wanted(sys, in.args[0], in.args[1], in.args[4]) || !enter_filter())
		return 0;
#endif
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	long ret = ctx->ret;
	long fd = in.args[0];
	switch (sys) {
	case VIGIL_SYS_SENDTO:
		dns_emit(cfg, s, sys, ret, fd, (void *)in.args[1], in.args[2], (void *)in.args[4], 0);
		break;
	case VIGIL_SYS_WRITE:
		dns_emit(cfg, s, sys, ret, fd, (void *)in.args[1], in.args[2], NULL, 0);
		break;
	case VIGIL_SYS_WRITEV: {
		/* glibc and libuv send TCP queries as [2-byte length, message]. */
		struct iovec iov[2] = {};
		__u64 cnt = in.args[2];
		if (cnt == 0 || bpf_probe_read_user(&iov[0], sizeof(iov[0]), (void *)in.args[1]) != 0)
			break;
		if (cnt >= 2 && iov[0].iov_len <= 2 &&
		    bpf_probe_read_user(&iov[1], sizeof(iov[1]), (void *)(in.args[1] + sizeof(struct iovec))) == 0) {
			dns_emit2(cfg, s, sys, ret, fd, iov[0].iov_base, iov[0].iov_len, iov[1].iov_base, iov[1].iov_len, NULL, 0);
			break;
		}
		dns_emit(cfg, s, sys, ret, fd, iov[0].iov_base, iov[0].iov_len, NULL, 0);
		break;
	}
	case VIGIL_SYS_SENDMSG:
		dns_msghdr(cfg, s, sys, ret, fd, (void *)in.args[1], 0, 0);
		break;
	case VIGIL_SYS_SENDMMSG:
		/* glibc sends the A and AAAA questions in one sendmmsg. */
		dns_msghdr(cfg, s, sys, ret, fd, (void *)in.args[1], 0, 0);
		if (in.args[2] > 1)
			dns_msghdr(cfg, s, sys, ret, fd, (void *)(in.args[1] + MMSGHDR_SIZE), 0, 0);
		break;
	}
	return 0;
}

PROBE_PAIR(sendto, VIGIL_SYS_SENDTO, 6, dns_send_enter, dns_send_exit)
PROBE_PAIR(sendmsg, VIGIL_SYS_SENDMSG, 3, dns_send_enter, dns_send_exit)
PROBE_PAIR(sendmmsg, VIGIL_SYS_SENDMMSG, 4, dns_send_enter, dns_send_exit)
PROBE_PAIR(write, VIGIL_SYS_WRITE, 3, dns_send_enter, dns_send_exit)
PROBE_PAIR(writev, VIGIL_SYS_WRITEV, 3, dns_send_enter, dns_send_exit)

/*
 * Receives: kept for any UDP socket, filtered on port 53 at exit (read()
 * carries no address: only connected sockets can tell), and for TCP streams
 * whose peer is port 53. A resolver reads a TCP answer's 2-byte length on
 * its own first; dns_emit2 drops that read, and the message read after it
 * is kept.
 */
static __always_inline bool dns_recv_wanted(__u32 sys, __u64 fd)
{
	struct sock *sk = current_fd_sock(fd);
	if (is_tcp(sk))
		return sk_dport(sk) == DNS_PORT;
	if (!is_udp(sk))
		return false;
	return sys != VIGIL_SYS_READ || sk_dport(sk) == DNS_PORT;
}

#ifdef VIGIL_COMPAT
static __always_inline int dns_recv_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!dns_recv_wanted(sys, ctx->args[0]))
		return 0;
	return remember_filtered(ctx, sys, nargs);
}
#endif

static __always_inline int dns_recv_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
	long ret = ctx->ret;
#ifdef VIGIL_COMPAT
	if (!recall(&in, sys))
		return 0;
	if (ret <= 0)
		return 0;
#else
	if (ret <= 0)
		return 0;
	syscall_args(&in, sys);
	if (!dns_recv_wanted(sys, in.args[0]) || !enter_filter())
		return 0;
#endif
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	long fd = in.args[0];
	switch (sys) {
	case VIGIL_SYS_RECVFROM: {
		const void *addr = (void *)in.args[4];
		__u16 port = addr ? user_sockaddr_port(addr) : 0;
		if (!port) {
			struct sock *sk = current_fd_sock(fd);
			if (sk)
				port = sk_dport(sk);
		}
		if (port != DNS_PORT)
			return 0;
		dns_emit(cfg, s, sys, ret, fd, (void *)in.args[1], ret, addr, 1);
		break;
	}
	case VIGIL_SYS_READ:
		dns_emit(cfg, s, sys, ret, fd, (void *)in.args[1], ret, NULL, 1);
		break;
	case VIGIL_SYS_RECVMSG: {
		struct user_msghdr_min m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)in.args[1]) != 0)
			return 0;
		if (!m.name) {
			struct sock *sk = current_fd_sock(fd);
			if (!sk || sk_dport(sk) != DNS_PORT)
				return 0;
		}
		dns_msghdr(cfg, s, sys, ret, fd, (void *)in.args[1], ret, 1);
		break;
	}
	}
	return 0;
}

PROBE_PAIR(recvfrom, VIGIL_SYS_RECVFROM, 6, dns_recv_enter, dns_recv_exit)
PROBE_PAIR(recvmsg, VIGIL_SYS_RECVMSG, 3, dns_recv_enter, dns_recv_exit)
PROBE_PAIR(read, VIGIL_SYS_READ, 3, dns_recv_enter, dns_recv_exit)

/* dup family: only duplications onto stdin, stdout or stderr. */
static __always_inline bool dup_wanted(__u64 oldfd, __u64 newfd)
{
	return newfd <= 2 && oldfd != newfd;
}

static __always_inline int dup_exit(struct trace_event_raw_sys_exit *ctx, __u32 sys)
{
	struct inflight in;
	long ret = ctx->ret;
	if (sys == VIGIL_SYS_DUP && (ret < 0 || ret > 2))
		return 0;
#ifdef VIGIL_COMPAT
	if (!recall(&in, sys))
		return 0;
#else
	syscall_args(&in, sys);
	if (sys != VIGIL_SYS_DUP && !dup_wanted(in.args[0], in.args[1]))
		return 0;
	if (!enter_filter())
		return 0;
#endif
	/*
	 * Only a socket put on a standard stream is reported (the move every
	 * reverse shell makes); shells redirect files, pipes and ttys onto them
	 * for every command, and the next exec's record says what its streams
	 * are anyway.
	 */
	struct rec_fdinfo old = {};
	fd_info(fd_file(current_task(), in.args[0]), &old);
	if (old.kind != VIGIL_FD_SOCKET)
		return 0;
	struct rec_config *cfg = get_config();
	struct scratch *s = scratch();
	if (!cfg || !s)
		return 0;
	struct rec_dup *r = (void *)s->buf;
	fill_hdr(&r->h, VIGIL_REC_DUP, sys, sizeof(*r));
	r->h.ret = ret;
	r->old_fd = in.args[0];
	r->new_fd = sys == VIGIL_SYS_DUP ? ret : (long)in.args[1];
	r->old = old;
	submit(cfg, s, sizeof(*r));
	return 0;
}

#ifdef VIGIL_COMPAT
static __always_inline int dup_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys, int nargs)
{
	if (!dup_wanted(ctx->args[0], ctx->args[1]))
		return 0;
	return remember_filtered(ctx, sys, nargs);
}
#endif

PROBE_PAIR(dup, VIGIL_SYS_DUP, 1, remember_filtered, dup_exit)
PROBE_PAIR(dup2, VIGIL_SYS_DUP2, 2, dup_enter, dup_exit)
PROBE_PAIR(dup3, VIGIL_SYS_DUP3, 3, dup_enter, dup_exit)
