// AArch64 NEON + dot product (ARMv8.2 sdot) kernel; chosen at run time where the CPU
// reports ASIMDDP. fp32 and fp16 rows: the neon kernel itself (the same operations,
// ops_neon.hpp), so the same scores bit for bit. int8 rows: the screen of
// kernel_avx512vnni.cpp with sdot (signed x signed bytes, so no unsigned offset): an
// integer dot product with each query quantized to int8 bounds every score (QuantQueries,
// topk.cpp), pairs whose bound is below the heap's threshold get NaN, every other pair the
// neon kernel's exact score. Results equal the neon ISA's bit for bit.
//
// Compile-checked with aarch64-linux-gnu-g++ on the project's x86 machines; its tests
// (tests/kernel/test_int8_screen.py) run on an aarch64 machine with dotprod.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernel.hpp"

namespace cliprt {
namespace {

#include "ops_neon.hpp"
#include "kernel_impl.hpp"

// The neon kernel's exact int8 score of row r of the block for query j.
inline float exact(const BlockArgs& a, int64_t r, int64_t j) {
  float s;
  tile<int8_t, 1, 1>(static_cast<const int8_t*>(a.rows) + r * a.row_stride, a.row_stride,
                     a.scales + r, a.d, a.qpack + j * a.qstride, a.qstride, &s, 1);
  return s;
}

// int32 dot product of row (d bytes) with the quantized query (zero-padded to 64).
inline int32_t dot_row(const int8_t* row, int64_t d, const int8_t* q) {
  int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
  int64_t i = 0;
  for (; i + 32 <= d; i += 32) {
    acc0 = vdotq_s32(acc0, vld1q_s8(row + i), vld1q_s8(q + i));
    acc1 = vdotq_s32(acc1, vld1q_s8(row + i + 16), vld1q_s8(q + i + 16));
  }
  for (; i + 16 <= d; i += 16) acc0 = vdotq_s32(acc0, vld1q_s8(row + i), vld1q_s8(q + i));
  if (i < d) {
    int8_t tail[16] = {};
    std::memcpy(tail, row + i, static_cast<size_t>(d - i));
    acc1 = vdotq_s32(acc1, vld1q_s8(tail), vld1q_s8(q + i));
  }
  return vaddvq_s32(vaddq_s32(acc0, acc1));
}

// Scales far from 1 (or NaN) are scored exactly: there the relative rounding bounds
// behind the margin do not hold (as in kernel_avx512vnni.cpp).
inline bool extreme(float s) {
  const float a = std::fabs(s);
  return !(a < 0x1p60f) || (a < 0x1p-60f && a != 0.f);
}

void score_int8(const BlockArgs& a) {
  const QuantQueries& qq = *a.quant;
  const int8_t* rows = static_cast<const int8_t*>(a.rows);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t r = 0; r < a.nr; ++r) {
    const int8_t* row = rows + r * a.row_stride;
    const float s = a.scales[r];
    const bool exact_row = extreme(s);
    for (int64_t j = 0; j < a.nq; ++j) {
      float& out = a.out[j * a.ld + r];
      if (exact_row || qq.exact_only[j]) {
        out = exact(a, r, j);
        continue;
      }
      const int32_t dot = dot_row(row, a.d, qq.q + j * qq.stride);
      const float upper = std::fma(s * qq.scale[j], static_cast<float>(dot),
                                   std::fabs(s) * qq.margin[j]);
      out = upper >= a.threshold[j] ? exact(a, r, j) : nan;
    }
  }
}

}  // namespace

void score_block_neondot(DType dtype, const BlockArgs& args) {
  if (dtype == DType::int8 && args.quant && args.threshold)
    score_int8(args);
  else
    score_block_impl(dtype, args);
}

}  // namespace cliprt
#endif
