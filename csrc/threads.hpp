// The kernel's threads: how many CPUs it may use, and one persistent pool that every
// search (and stream_read) shares, so a call wakes sleeping workers instead of starting
// threads.
#pragma once

#include <functional>

namespace cliprt {

// CPUs this process may run on (its affinity mask where the OS has one, else the
// hardware's thread count), read once, at least 1.
int usable_cpus();

// Runs part(t) for every t in [0, parts) on at most `threads` threads: the calling thread
// and up to threads - 1 pool workers, never more workers than usable_cpus() - 1 in the
// whole process. Returns when every part is done. Safe to call from many threads at once
// (each call's parts are claimed by whoever is free; the caller always works on its own,
// so a call completes even when every worker is busy with other calls). part must not
// throw. Which thread runs which part is unspecified: results must not depend on it.
void parallel_parts(int parts, int threads, const std::function<void(int)>& part);

// Stops and joins the pool's workers (the extension calls it from Python's atexit, so no
// worker outlives the interpreter). Later calls run their parts on the calling thread.
void shutdown_pool();

// Workers currently started (tests).
int pool_workers();

}  // namespace cliprt
