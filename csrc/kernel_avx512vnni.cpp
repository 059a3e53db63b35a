// AVX-512 + VNNI kernel; chosen at run time where the CPU has AVX512_VNNI.
//
// fp32 and fp16 rows: the avx512 kernel itself (the same operations, ops_avx512.hpp), so
// the same scores bit for bit.
//
// int8 rows: a screen, then the exact score. Each query is quantized to int8 once per
// search (QuantQueries, built by the driver); vpdpbusd gives every (row, query) pair the
// integer dot product of the row with the quantized query, and from it an upper bound of
// the pair's exact score (the margin covers quantization and rounding, see topk.cpp).
// Pairs whose bound is below the heap's threshold cannot enter the results and get NaN;
// every other pair gets its exact score from the avx512 int8 kernel. So results and
// scores are those of the avx512 ISA, bit for bit; only the time changes.
//
// vpdpbusd multiplies unsigned by signed bytes: rows are offset to unsigned (x ^ 0x80 =
// x + 128) and 128 * sum(q) is subtracted, exactly, in int32. Few queries: rows are read
// in place, R rows x Q queries per tile, one horizontal sum per pair. Many queries: the
// block is first packed 16 rows x 4 bytes per vector, so a broadcast query dword scores
// 16 rows per instruction and no horizontal sum is needed.
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (GCC bug
// 105593), a false -Wuninitialized in every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernel.hpp"

namespace cliprt {
namespace {

#include "ops_avx512.hpp"
#include "kernel_impl.hpp"

// acc += dot products of unsigned bytes a with signed bytes b, four at a time. GCC 12
// copies the accumulator of _mm512_dpbusd_epi32 through spare registers and the stack
// (a 2x slowdown measured); the instruction itself, in asm, keeps it in place.
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__)
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, a, b);
#endif
}

// From this many queries on, the block is packed for broadcast dot products.
constexpr int64_t kPackQueries = 6;

inline uint32_t load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The avx512 kernel's exact int8 score of row r of the block for query j.
inline float exact(const BlockArgs& a, int64_t r, int64_t j) {
  float s;
  tile<int8_t, 1, 1>(static_cast<const int8_t*>(a.rows) + r * a.row_stride, a.row_stride,
                     a.scales + r, a.d, a.qpack + j * a.qstride, a.qstride, &s, 1);
  return s;
}

// Writes the scores of rows [r0, r0 + nr) (nr <= 16) for query j from their int32 dots
// with the offset rows: exact where the bound reaches the threshold, NaN elsewhere.
inline void finish16(const BlockArgs& a, int64_t r0, int nr, int64_t j, __m512i dots) {
  const QuantQueries& qq = *a.quant;
  float* out = a.out + j * a.ld + r0;
  const __mmask16 valid = static_cast<__mmask16>(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
  __mmask16 keep = valid;
  if (!qq.exact_only[j]) {
    dots = _mm512_sub_epi32(dots, _mm512_set1_epi32(128 * qq.sum[j]));
    const __m512 s = _mm512_maskz_loadu_ps(valid, a.scales + r0);
    const __m512 as = _mm512_abs_ps(s);
    const __m512 upper =
        _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_set1_ps(qq.scale[j])), _mm512_cvtepi32_ps(dots),
                        _mm512_mul_ps(as, _mm512_set1_ps(qq.margin[j])));
    // Scales far from 1 (or NaN) are scored exactly: there the relative rounding bounds
    // behind the margin do not hold. A zero scale scores 0 either way.
    const __mmask16 extreme =
        _mm512_cmp_ps_mask(as, _mm512_set1_ps(0x1p60f), _CMP_NLT_UQ) |
        (_mm512_cmp_ps_mask(as, _mm512_set1_ps(0x1p-60f), _CMP_LT_OQ) &
         _mm512_cmp_ps_mask(as, _mm512_setzero_ps(), _CMP_NEQ_OQ));
    const __mmask16 reach = _mm512_cmp_ps_mask(upper, _mm512_set1_ps(a.threshold[j]), _CMP_GE_OQ);
    keep = static_cast<__mmask16>((reach | extreme) & valid);
    _mm512_mask_storeu_ps(out, static_cast<__mmask16>(valid & ~keep),
                          _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
  }
  for (unsigned m = keep; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    out[l] = exact(a, r0 + l, j);
  }
}

// -- few queries: rows read in place ---------------------------------------------------

// dots[j * 16 + r] for R rows x Q queries (R <= 16), one accumulator per pair.
template <int R, int Q>
CLIPRT_TILE_NOINLINE void dots_in_place(const int8_t* rows, int64_t stride, int64_t d, const int8_t* q,
                          int64_t qstride, int32_t* dots) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const char* next = reinterpret_cast<const char*>(rows) + kPrefetchBytes;
  __m512i acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < Q; ++j) acc[r][j] = _mm512_setzero_si512();
  for (int64_t i = 0; i < d; i += 64) {
    const __mmask64 m = d - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (d - i)) - 1;
    __m512i rv[R];
    for (int r = 0; r < R; ++r)
      rv[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, rows + r * stride + i), flip);
    for (int p = 0; p < R; ++p) CLIPRT_PREFETCH(next + p * 64);
    next += R * 64;
    for (int j = 0; j < Q; ++j) {
      // Query padding is zero, so the row's padding (flipped to 128) adds nothing.
      const __m512i qv = _mm512_loadu_si512(q + j * qstride + i);
      for (int r = 0; r < R; ++r) acc[r][j] = dpbusd(acc[r][j], rv[r], qv);
    }
  }
  for (int j = 0; j < Q; ++j)
    for (int r = 0; r < R; ++r) dots[j * 16 + r] = _mm512_reduce_add_epi32(acc[r][j]);
}

// One row's dots with Q queries, 16 int32 partial sums each (two chains per query,
// summed: integer addition, so the order is free).
template <int Q>
CLIPRT_ROW_INLINE void row_dots(const int8_t* row, int64_t d, const int8_t* q, int64_t qstride,
                     __m512i (&acc)[Q]) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i odd[Q];
  for (int j = 0; j < Q; ++j) acc[j] = odd[j] = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 128 <= d; i += 128) {
    const __m512i r0 = _mm512_xor_si512(_mm512_loadu_si512(row + i), flip);
    const __m512i r1 = _mm512_xor_si512(_mm512_loadu_si512(row + i + 64), flip);
    for (int j = 0; j < Q; ++j) {
      acc[j] = dpbusd(acc[j], r0, _mm512_loadu_si512(q + j * qstride + i));
      odd[j] = dpbusd(odd[j], r1, _mm512_loadu_si512(q + j * qstride + i + 64));
    }
  }
  for (; i < d; i += 64) {
    // Query padding is zero, so the row's padding (flipped to 128) adds nothing.
    const __mmask64 m = d - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (d - i)) - 1;
    const __m512i rv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, row + i), flip);
    for (int j = 0; j < Q; ++j)
      acc[j] = dpbusd(acc[j], rv, _mm512_loadu_si512(q + j * qstride + i));
  }
  for (int j = 0; j < Q; ++j) acc[j] = _mm512_add_epi32(acc[j], odd[j]);
}

// Horizontal sums of 16 rows' accumulators at once (the order of the fp32 transposed
// sum in ops_avx512.hpp; for integers any order gives the same sums).
inline __m512i isum8(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x44), _mm512_shuffle_i32x4(a, b, 0xEE));
}
inline __m512i isum4(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x88), _mm512_shuffle_i32x4(a, b, 0xDD));
}
inline __m512i isum2(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
inline __m512i isum1(__m512i a, __m512i b) {
  const __m512 x = _mm512_castsi512_ps(a), y = _mm512_castsi512_ps(b);
  const __m512i s = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(x, y, 0x88)),
                                     _mm512_castps_si512(_mm512_shuffle_ps(x, y, 0xDD)));
  return _mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);
}

// The dots of 16 consecutive rows with Q queries, row r in element r: rows are read in
// order (a linear stream), their accumulators reduced together. Written out row by row
// (no arrays indexed by loop counters), so every partial sum stays in a register.
template <int Q>
CLIPRT_TILE_NOINLINE void dots16(const int8_t* rows, int64_t stride, int64_t d, const int8_t* q,
                            int64_t qstride, __m512i (&out)[Q]) {
  __m512i x[Q], y[Q], p0[Q], p1[Q], h0[Q], h1[Q], g0[Q], g1[Q];
#define CLIPRT_PAIR(dst, r)                                                     \
  row_dots<Q>(rows + (r) * stride, d, q, qstride, x);                           \
  row_dots<Q>(rows + ((r) + 1) * stride, d, q, qstride, y);                     \
  for (int j = 0; j < Q; ++j) dst[j] = isum8(x[j], y[j]);
  CLIPRT_PAIR(p0, 0)
  CLIPRT_PAIR(p1, 2)
  for (int j = 0; j < Q; ++j) h0[j] = isum4(p0[j], p1[j]);
  CLIPRT_PAIR(p0, 4)
  CLIPRT_PAIR(p1, 6)
  for (int j = 0; j < Q; ++j) h1[j] = isum4(p0[j], p1[j]);
  for (int j = 0; j < Q; ++j) g0[j] = isum2(h0[j], h1[j]);
  CLIPRT_PAIR(p0, 8)
  CLIPRT_PAIR(p1, 10)
  for (int j = 0; j < Q; ++j) h0[j] = isum4(p0[j], p1[j]);
  CLIPRT_PAIR(p0, 12)
  CLIPRT_PAIR(p1, 14)
#undef CLIPRT_PAIR
  for (int j = 0; j < Q; ++j) h1[j] = isum4(p0[j], p1[j]);
  for (int j = 0; j < Q; ++j) g1[j] = isum2(h0[j], h1[j]);
  for (int j = 0; j < Q; ++j) out[j] = isum1(g0[j], g1[j]);
}

template <int Q>
inline void few_queries(const BlockArgs& a) {
  const int8_t* rows = static_cast<const int8_t*>(a.rows);
  const QuantQueries& qq = *a.quant;
  int64_t r0 = 0;
  for (; r0 + 16 <= a.nr; r0 += 16) {
    __m512i dots[Q];
    dots16<Q>(rows + r0 * a.row_stride, a.row_stride, a.d, qq.q, qq.stride, dots);
    for (int j = 0; j < Q; ++j) finish16(a, r0, 16, j, dots[j]);
  }
  if (r0 < a.nr) {
    alignas(64) int32_t dots[Q * 16];
    const int nr = static_cast<int>(a.nr - r0);
    for (int r = 0; r < nr; ++r)
      dots_in_place<1, Q>(rows + (r0 + r) * a.row_stride, a.row_stride, a.d, qq.q, qq.stride,
                          dots + r);
    for (int j = 0; j < Q; ++j) finish16(a, r0, nr, j, _mm512_load_si512(dots + j * 16));
  }
}

// -- many queries: the block packed 16 rows x 4 bytes per vector ------------------------

// packed[(g * kd4 + k) * 16 + l] = bytes 4k..4k+3 of row 16g + l, offset to unsigned;
// zero past the row's end and for rows past the block's end.
inline void pack(const BlockArgs& a, uint32_t* packed, int64_t kd4) {
  const int8_t* rows = static_cast<const int8_t*>(a.rows);
  const int64_t groups = (a.nr + 15) / 16, full = a.d / 4;
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t* dst = packed + g * kd4 * 16;
    for (int64_t l = 0; l < 16; ++l) {
      const int64_t r = g * 16 + l;
      if (r >= a.nr) {
        for (int64_t k = 0; k < kd4; ++k) dst[k * 16 + l] = 0;
        continue;
      }
      const int8_t* row = rows + r * a.row_stride;
      for (int64_t k = 0; k < full; ++k) dst[k * 16 + l] = load32(row + 4 * k) ^ 0x80808080u;
      if (full < kd4) {
        uint32_t w = 0;
        std::memcpy(&w, row + 4 * full, static_cast<size_t>(a.d - 4 * full));
        dst[full * 16 + l] = w ^ 0x80808080u;
      }
    }
  }
}

// G groups of 16 rows x Q queries: acc[g][j] holds 16 rows' dots with query j.
template <int G, int Q>
CLIPRT_TILE_NOINLINE void packed_tile(const BlockArgs& a, const uint32_t* packed, int64_t kd4, int64_t g0,
                        int64_t j0) {
  const QuantQueries& qq = *a.quant;
  const int8_t* q = qq.q + j0 * qq.stride;
  __m512i acc[G][Q];
  for (int g = 0; g < G; ++g)
    for (int j = 0; j < Q; ++j) acc[g][j] = _mm512_setzero_si512();
  const uint32_t* p = packed + g0 * kd4 * 16;
  for (int64_t k = 0; k < kd4; ++k) {
    __m512i rv[G];
    for (int g = 0; g < G; ++g) rv[g] = _mm512_loadu_si512(p + (g * kd4 + k) * 16);
    for (int j = 0; j < Q; ++j) {
      const __m512i qb = _mm512_set1_epi32(static_cast<int>(load32(q + j * qq.stride + 4 * k)));
      for (int g = 0; g < G; ++g) acc[g][j] = dpbusd(acc[g][j], rv[g], qb);
    }
  }
  for (int g = 0; g < G; ++g) {
    const int64_t r0 = (g0 + g) * 16;
    const int nr = static_cast<int>(a.nr - r0 < 16 ? a.nr - r0 : 16);
    for (int j = 0; j < Q; ++j) finish16(a, r0, nr, j0 + j, acc[g][j]);
  }
}

// Groups x queries of the packed tile: 4 x 6 = 24 accumulators, 10 loads and broadcasts
// per 24 vpdpbusd.
constexpr int kPackedG = 4;
constexpr int kPackedQ = 6;

template <int G>
inline void packed_tile_q(const BlockArgs& a, const uint32_t* packed, int64_t kd4, int64_t g0,
                          int64_t j0, int64_t nq) {
  static_assert(kPackedQ == 6, "the switch below covers 1..kPackedQ queries");
  switch (nq) {
    case 1: packed_tile<G, 1>(a, packed, kd4, g0, j0); break;
    case 2: packed_tile<G, 2>(a, packed, kd4, g0, j0); break;
    case 3: packed_tile<G, 3>(a, packed, kd4, g0, j0); break;
    case 4: packed_tile<G, 4>(a, packed, kd4, g0, j0); break;
    case 5: packed_tile<G, 5>(a, packed, kd4, g0, j0); break;
    default: packed_tile<G, kPackedQ>(a, packed, kd4, g0, j0); break;
  }
}

// The row-group remainder (fewer than kPackedG groups).
inline void packed_rest(const BlockArgs& a, const uint32_t* packed, int64_t kd4, int64_t g0,
                        int64_t j0, int64_t nq, int64_t groups) {
  switch (groups) {
    case 1: packed_tile_q<1>(a, packed, kd4, g0, j0, nq); break;
    case 2: packed_tile_q<2>(a, packed, kd4, g0, j0, nq); break;
    default: packed_tile_q<3>(a, packed, kd4, g0, j0, nq); break;
  }
}

inline void many_queries(const BlockArgs& a) {
  const int64_t kd4 = (a.d + 3) / 4, groups = (a.nr + 15) / 16;
  uint32_t* packed = static_cast<uint32_t*>(a.scratch);
  pack(a, packed, kd4);
  for (int64_t j0 = 0; j0 < a.nq; j0 += kPackedQ) {
    const int64_t nq = a.nq - j0 < kPackedQ ? a.nq - j0 : kPackedQ;
    int64_t g0 = 0;
    for (; g0 + kPackedG <= groups; g0 += kPackedG)
      packed_tile_q<kPackedG>(a, packed, kd4, g0, j0, nq);
    if (g0 < groups) packed_rest(a, packed, kd4, g0, j0, nq, groups - g0);
  }
}

void score_int8(const BlockArgs& a) {
  if (a.nq >= kPackQueries && a.scratch) {
    many_queries(a);
    return;
  }
  for (int64_t j0 = 0; j0 < a.nq; j0 += 2) {
    BlockArgs one = a;
    // finish16 indexes queries from a.quant / qpack / threshold / out: shift them all.
    QuantQueries qq = *a.quant;
    qq.q += j0 * qq.stride;
    qq.scale += j0;
    qq.sum += j0;
    qq.margin += j0;
    qq.exact_only += j0;
    one.quant = &qq;
    one.qpack = a.qpack + j0 * a.qstride;
    one.threshold = a.threshold + j0;
    one.out = a.out + j0 * a.ld;
    one.nq = a.nq - j0 < 2 ? a.nq - j0 : 2;
    if (one.nq == 2)
      few_queries<2>(one);
    else
      few_queries<1>(one);
  }
}

}  // namespace

void score_block_avx512vnni(DType dtype, const BlockArgs& args) {
  if (dtype == DType::int8 && args.quant && args.threshold)
    score_int8(args);
  else
    score_block_impl(dtype, args);
}

}  // namespace cliprt
#endif
