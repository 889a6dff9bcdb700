// Package probes holds the compiled eBPF probes and their generated Go
// bindings. The objects are committed so `go build` needs no clang; `make
// generate` rebuilds them from bpf/ with the pinned Debian clang.
package probes

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type rec_hdr -type rec_exec -type rec_fork -type rec_exit -type rec_syscall -type rec_open -type rec_sock -type rec_dns -type rec_dup -type rec_sockaddr -type rec_fdinfo -type rec_config -type rec_proc_state -type rec_file_key -type rec_type -type rec_sys -type rec_fd_kind -type rec_execveat -type rec_counter -type rec_cfg_flag Vigil ../../bpf/vigil.bpf.c -- -I../../bpf

// The compat object: the same probes reading kernel memory through
// bpf_probe_read_kernel, for kernels the direct object does not load on
// (before 6.2, or without kernel BTF). See bpf/common.h.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -DVIGIL_COMPAT" -target bpfel -no-global-types VigilCompat ../../bpf/vigil.bpf.c -- -I../../bpf
