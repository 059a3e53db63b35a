// AArch64 NEON kernel: eight lanes as two float32x4_t, FMA, the same hsum tree as the
// other 8-lane ISAs. Compiled only on aarch64 (where NEON is part of the base ISA).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstdint>
#include <type_traits>
#include <cstring>

#include "kernel.hpp"

namespace cliprt {
namespace {

#include "ops_neon.hpp"
#include "kernel_impl.hpp"

}  // namespace

void score_block_neon(DType dtype, const BlockArgs& args) { score_block_impl(dtype, args); }

}  // namespace cliprt
#endif
