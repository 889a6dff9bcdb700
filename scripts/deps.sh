#!/usr/bin/env bash
# Installs what Vigil's build, tests and demo need when it is missing, from
# Debian's packages and the Go module proxy. Safe to run again: it only
# installs what is absent. Usage: scripts/deps.sh [build|test|demo]
set -euo pipefail
what=${1:-test}

need=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { # want COMMAND-OR-PATH PACKAGE
  if [[ $1 == /* ]]; then [[ -e $1 ]] || need+=("$2"); else have "$1" || need+=("$2"); fi
}

# Building the probes and the protobuf code.
want clang clang
want llvm-strip llvm
want /usr/include/bpf/bpf_helpers.h libbpf-dev
want bpftool bpftool
want protoc protobuf-compiler
want make make
if [[ $what == test || $what == demo ]]; then
  want ip iproute2
  want nc netcat-openbsd
  want curl curl
fi
if [[ $what == test ]]; then
  want containerd containerd
  want runc runc
  want /bin/busybox busybox-static
  want /usr/lib/postgresql postgresql
  want chromium chromium
  want strace strace
  # The end-to-end suite's attacks and benign workloads.
  want git git
  want setpriv util-linux
  want getent libc-bin
  want python3 python3
  want tar tar
  want ssh openssh-client
  want script bsdutils
fi

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages: ${need[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have go; then
  echo "Go is not on PATH; install Go 1.24 or newer" >&2
  exit 1
fi
