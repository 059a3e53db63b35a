// How many threads the kernel may use on this machine.
#pragma once

namespace cliprt {

// CPUs this process may run on (its affinity mask where the OS has one, else the
// hardware's thread count), at least 1.
int usable_cpus();

}  // namespace cliprt
