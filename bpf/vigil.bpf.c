//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One object for all probes, so they share the ring buffer, the config and
 * the filter maps without pinning. Each domain keeps its own file.
 */
#include "process.bpf.c"
#include "file.bpf.c"
#include "network.bpf.c"
#include "uring.bpf.c"
