// The per-ISA scoring entry points (one translation unit each, built with its own flags)
// and what they share with the driver in topk.cpp.
#pragma once
#include <cstdint>

#include "topk.hpp"

namespace cliprt {

// A read prefetch hint (never faults, whatever the address).
#if defined(__GNUC__) || defined(__clang__)
#define CLIPRT_PREFETCH(p) __builtin_prefetch(p)
#elif defined(_M_X64)
#include <xmmintrin.h>
#define CLIPRT_PREFETCH(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0)
#else
#define CLIPRT_PREFETCH(p) ((void)(p))
#endif

// Queries are packed by the driver into zero-padded rows of kQueryAlign-multiple length,
// so a kernel may load whole vectors of a query past d.
constexpr int64_t kQueryAlign = 16;

// How far ahead (bytes) a scan of R interleaved rows prefetches them, in a linear stream.
// Measured on Zen 4: the hardware prefetchers alone follow R interleaved rows at under
// half the memory bandwidth; 4 KiB ahead brings such a scan close to the read floor. The
// AVX-512 one-or-two-query scans read rows strictly in order instead and prefetch
// nothing: there the hardware prefetchers alone came closer to the floor (software
// prefetches 1-16 KiB ahead, T0/T1/T2/NTA, cost 5-25% on a shared Zen 4).
constexpr int64_t kPrefetchBytes = 4096;

// int8 queries for the VNNI path, made once per search by the driver (int8 rows only,
// d <= kQuantMaxDim): query j ~ scale[j] * q[j * stride ..], |error| per element
// e_i = query_i - scale * q_i. margin[j] bounds, for a row of unit scale, |exact fp32
// kernel score - scale[j] * dot(row, q_j)| (127 * sum|e_i| plus rounding); `exact_only[j]`
// marks queries the bound cannot cover (extreme magnitudes): every row is scored exactly.
struct QuantQueries {
  const int8_t* q;           // nq rows, zero-padded to `stride` bytes (a multiple of 64)
  int64_t stride;
  const float* scale;
  const int32_t* sum;        // sum of q_j's elements (the unsigned-offset correction)
  const float* margin;
  const uint8_t* exact_only;
};

// The largest d the int8 dot-product path takes: 255 * 127 * d must fit in an int32.
constexpr int64_t kQuantMaxDim = 65536;

struct BlockArgs {
  const void* rows;      // first row of the block
  int64_t row_stride;    // elements
  const float* scales;   // int8: per-row scales of the block, else null
  int64_t nr;            // rows in the block
  int64_t d;
  const float* qpack;    // nq packed queries, qstride floats apart
  int64_t qstride;
  int64_t nq;
  float* out;            // out[q * ld + r]
  int64_t ld;
  // Scratch of scratch_bytes(block rows, d) bytes private to the calling thread, or null
  // (the driver gives it only to blocks of 3 or more queries).
  void* scratch;
  // Per query, the score a row must reach to matter (the heap's threshold when the block
  // started, -inf while it fills). A kernel may write NaN instead of the score of any
  // pair it has proved to score below it; every other pair gets its exact score.
  const float* threshold;
  const QuantQueries* quant;  // int8 rows on a VNNI ISA, else null
};

// Scratch a block of `rows` rows of dim d needs: its rows widened to fp32, or packed for
// the int8 dot-product path.
constexpr int64_t scratch_bytes(int64_t rows, int64_t d) {
  return (rows + 16) * (d + 64) * 4;
}

// Writes the score of every (row, query) pair of the block.
using ScoreBlockFn = void (*)(DType dtype, const BlockArgs& args);

void score_block_baseline(DType dtype, const BlockArgs& args);
#if defined(__x86_64__) || defined(_M_X64)
void score_block_avx2(DType dtype, const BlockArgs& args);
void score_block_avx512(DType dtype, const BlockArgs& args);
void score_block_avx512vnni(DType dtype, const BlockArgs& args);
#endif
#if defined(__aarch64__)
void score_block_neon(DType dtype, const BlockArgs& args);
void score_block_neondot(DType dtype, const BlockArgs& args);
#endif

// Exact IEEE half -> float (the baseline and NEON-less paths use it).
float half_to_float(uint16_t h);

}  // namespace cliprt
