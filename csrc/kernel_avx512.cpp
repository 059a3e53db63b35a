// AVX-512 (F, BW, VL) kernel, with F16C for fp16 rows; chosen at run time. Row tails use
// masked loads, which never touch memory past the row. int8 rows are widened to fp32
// here; kernel_avx512vnni.cpp adds the VNNI int8 path on top of the same operations.
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (GCC bug
// 105593), a false -Wuninitialized in every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernel.hpp"

namespace cliprt {
namespace {

#include "ops_avx512.hpp"
#include "kernel_impl.hpp"

}  // namespace

void score_block_avx512(DType dtype, const BlockArgs& args) { score_block_impl(dtype, args); }

}  // namespace cliprt
#endif
