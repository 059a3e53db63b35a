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

// How far ahead (bytes) the one-or-two-query scan prefetches rows, in a linear stream.
// Measured on Zen 4: the hardware prefetchers alone follow R interleaved rows at under
// half the memory bandwidth; 4 KiB ahead brings the scan to the read floor.
constexpr int64_t kPrefetchBytes = 4096;

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
};

// Writes the score of every (row, query) pair of the block.
using ScoreBlockFn = void (*)(DType dtype, const BlockArgs& args);

void score_block_baseline(DType dtype, const BlockArgs& args);
#if defined(__x86_64__) || defined(_M_X64)
void score_block_avx2(DType dtype, const BlockArgs& args);
void score_block_avx512(DType dtype, const BlockArgs& args);
#endif
#if defined(__aarch64__)
void score_block_neon(DType dtype, const BlockArgs& args);
#endif

// Exact IEEE half -> float (the baseline and NEON-less paths use it).
float half_to_float(uint16_t h);

}  // namespace cliprt
