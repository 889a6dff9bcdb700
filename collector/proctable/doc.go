// Package proctable is the sensor's process table: it turns the pid in a
// kernel record into the *vigilv1.Process the event carries, with a stable
// exec_id, the parent's exec_id, a bounded lineage, credentials, the
// executable's identity and, once known, its SHA-256.
//
// # Identifiers
//
// A process's exec_id is derived from three numbers that together never
// repeat: the first 6 bytes of the boot id (/proc/sys/kernel/random/boot_id),
// the host pid, and the process start time in clock ticks since boot. The 16
// bytes are encoded as unpadded base64url, 22 characters.
//
// The start time is truncated to clock ticks (USER_HZ, 100 per second on
// every Linux architecture the sensor supports) because that is the only
// precision /proc/PID/stat (field 22) offers, and processes seeded from /proc
// must get the same id as the probes give them. The kernel computes field 22
// as task->start_boottime / (NSEC_PER_SEC / USER_HZ), truncating, and
// ExecInfo.StartTime is divided the same way, so a probe that reports
// task->start_boottime (ns since boot, suspend included) always lands on the
// same id. A probe that reports task->start_time (CLOCK_MONOTONIC) lands on
// the same id unless the host has been suspended since boot; servers and
// cloud instances are not.
//
// The exec_id names the process (the task group), not the program image:
// execve keeps the id and replaces the image (ExePath, Args, Comm, ...), and
// fork gives the child a new id whose parent is the forking process. So the
// lineage of "bash -c 'ls'" shows ls's parent as the bash that forked it, as
// ps does. The parent link is the parent at fork (or at /proc seeding) time; a
// later reparenting to init or a subreaper does not rewrite it, because the
// original parent is what an investigation wants.
//
// # Published messages
//
// Lookup, OnExec, OnFork and the other methods return a *vigilv1.Process
// that is shared by every event of that process and must be treated as
// immutable by callers. A change (credentials, working directory, a SHA-256
// that became known) publishes a new message, copied on write; events that
// already hold the older message keep it, so each event shows the process as
// it was when the event was decoded.
//
// Lineage is a snapshot taken when the process is created (fork, exec of an
// unknown process, or seeding): nearest ancestor first, Config.LineageDepth
// entries at most, with arguments only on the nearest
// Config.LineageArgsDepth ancestors. Ancestor messages are shared between the
// lineages of siblings and descendants.
//
// # Lifetimes
//
// An entry lives while its process does. OnExit marks it exited; it stays
// resolvable (by pid, until the pid is reused, and by exec_id) for
// Config.ExitedTTL, so events decoded after the exit record still find their
// process, and then it is dropped. At most Config.MaxExited exited entries are
// kept; beyond that the oldest go first (counted). Because the ring buffer can
// lose exit records, Run sweeps live entries every Config.SweepInterval and
// retires those whose pid is gone from /proc or now has another start time.
//
// A Lookup miss reads /proc/PID once, inserts what it finds (counted) and
// remembers a failed read for a second, so a flood of events from a process
// that is already gone does not turn into a flood of /proc reads.
//
// # Executable hashes and user names
//
// An exec record carries the executable inode's facts: device, inode,
// size, mtime and ctime (ExecInfo.ExeSize and the times). They key an LRU
// cache of digests, so an exec of a file hashed before costs no system
// call: OnExec publishes the digest and times at once. The ctime is part of
// the key because a binary rewritten in place with its mtime put back
// (touch -d) keeps size and mtime but not ctime, which no system call can
// set. Kernels with multigrain timestamps (6.13 and later) keep a "queried"
// flag in bit 31 of the inode's ctime nanoseconds, so a probe that reads
// the field raw may report the ctime 2^31 ns late: a stat's ctime matches
// either way, and the published ExeCtime is always the stat's.
//
// On a miss, hashing reads the whole file, so it happens on the event path
// only for small files (HashNowUpTo, which the collector calls at exec) and
// otherwise in the worker goroutines started by Run (the queue is bounded;
// a full queue drops the job, counted). Both open /proc/PID/exe, which is
// the very file the process runs even inside a container's mount
// namespace, a memfd or a deleted file; check with fstat that it is the
// version the record describes; hash it; and check again that it did not
// change while it was read. A process that is gone before that (a one-shot
// command) is hashed by path inside its parent's root (openat2 with
// RESOLVE_IN_ROOT), if the file there is still that version. Events decoded
// before the hash is published have an empty ExeSha256; HashNow hashes
// synchronously for a caller that cannot wait. The worker skips a job the
// event path has done meanwhile, and confirms the times with a stat when
// the cache could not.
//
// Without the facts (procfs mode), the cache is keyed by what fstat
// reports, and the worker stats the executable for ExeCtime and ExeMtime
// when the exec did not carry them.
//
// User and group names come from /etc/passwd and /etc/group as the process
// sees them (/proc/PID/root/etc/...), cached per mount namespace and re-read
// when an id is missing and the copy is older than 30s. When ExecInfo
// carries the mount namespace (MntNs) and its files are already cached the
// names are set at once; otherwise the worker resolves them and publishes.
//
// # Concurrency
//
// One goroutine (the collector's reader) calls the On* methods; any number of
// goroutines may call Lookup, LookupExecID and ResolvePath at the same time.
// A Lookup hit takes a read lock, does one map lookup and does not allocate.
package proctable
