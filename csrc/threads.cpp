// The machine's usable CPU count, read once.
#include "threads.hpp"

#include <algorithm>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace cliprt {

int usable_cpus() {
  static const int cpus = [] {
#if defined(__linux__)
    // A container or taskset may allow fewer CPUs than the machine has.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return cpus;
}

}  // namespace cliprt
