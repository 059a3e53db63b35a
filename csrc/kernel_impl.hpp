// The one scoring kernel, compiled once per ISA. Each kernel_<isa>.cpp defines a struct
// `Ops` (vector type, width, loads, fma, horizontal sum) inside its own anonymous
// namespace and then includes this file there, so no inline function compiled with one
// ISA's flags can be merged by the linker into another ISA's code.
//
// Every (row, query) pair owns one accumulator that walks d in steps of Ops::W, then the
// tail through a masked/zero-padded load, then one fixed horizontal-sum tree, then (int8)
// one multiply by the row's scale. Tile shape only decides how many pairs run side by
// side, never the order of any pair's additions: a score is the same for every batch
// size, thread count and block split.
//
// Expects: <cstdint>, <type_traits> and kernel.hpp included, `Ops` declared in the enclosing namespace.
// Ops: V, W; R_FEW (rows per tile for 1-2 queries of int8 rows; fp32 and fp16 rows use
// one: a single sequential stream keeps up with memory and measured faster than
// interleaved rows); R, Q (rows x queries of the main tile); zero(), fma(a, b, c) = a*b+c,
// hsum(V), loadq(const float*), store(float*, V), load(const T*), load_part(const T*,
// int64_t n) for T in {float, uint16_t, int8_t}. Optional (AVX-512): mul(a, b) and
// sum8/sum4/sum2/sum1, hsum transposed over 16 rows (tile16), used for 1-2 queries.

template <class T, int R, int Q, bool PF = false>
inline void tile(const T* rows, int64_t stride, const float* scales, int64_t d,
                 const float* q, int64_t qstride, float* out, int64_t ld) {
  // PF: prefetch kPrefetchBytes ahead of the tile, linearly, while it is scored. With one
  // or two queries the scan is a memory stream of R interleaved rows, which the hardware
  // prefetchers follow poorly.
  const char* next = reinterpret_cast<const char*>(rows) + kPrefetchBytes;
  constexpr int64_t kStep = R * Ops::W * static_cast<int64_t>(sizeof(T));
  // One prefetch per 64-byte line: each iteration (kStep >= 64) or every kEvery of them.
  constexpr int64_t kEvery = kStep >= 64 ? 1 : 64 / kStep;
  typename Ops::V acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < Q; ++j) acc[r][j] = Ops::zero();
  int64_t i = 0;
  for (; i + Ops::W <= d; i += Ops::W) {
    typename Ops::V rv[R];
    for (int r = 0; r < R; ++r) rv[r] = Ops::load(rows + r * stride + i);
    if constexpr (PF) {
      if (kEvery == 1 || (i / Ops::W) % kEvery == 0)
        for (int64_t p = 0; p < kStep || p == 0; p += 64) CLIPRT_PREFETCH(next + p);
      next += kStep;
    }
    for (int j = 0; j < Q; ++j) {
      const typename Ops::V qv = Ops::loadq(q + j * qstride + i);
      for (int r = 0; r < R; ++r) acc[r][j] = Ops::fma(rv[r], qv, acc[r][j]);
    }
  }
  if (i < d) {
    typename Ops::V rv[R];
    for (int r = 0; r < R; ++r) rv[r] = Ops::load_part(rows + r * stride + i, d - i);
    for (int j = 0; j < Q; ++j) {
      const typename Ops::V qv = Ops::loadq(q + j * qstride + i);
      for (int r = 0; r < R; ++r) acc[r][j] = Ops::fma(rv[r], qv, acc[r][j]);
    }
  }
  for (int j = 0; j < Q; ++j)
    for (int r = 0; r < R; ++r) {
      float s = Ops::hsum(acc[r][j]);
      if (scales) s *= scales[r];
      out[j * ld + r] = s;
    }
}

// tile16 stays one function with its 16 rows' loops inlined: otherwise GCC either calls
// the row loop out of line or inlines the tile into a larger function, and in both cases
// passes the accumulators through memory.
#if defined(__GNUC__)
#define CLIPRT_TILE_NOINLINE __attribute__((noinline))
#define CLIPRT_ROW_INLINE inline __attribute__((always_inline))
#else
#define CLIPRT_TILE_NOINLINE
#define CLIPRT_ROW_INLINE inline
#endif

// Ops with sum8..sum1 (a transposed hsum of 16 accumulators, see ops_avx512.hpp).
template <class O, class = void>
struct HasSum16 : std::false_type {};
template <class O>
struct HasSum16<O, std::void_t<decltype(O::sum1(O::zero(), O::zero()))>> : std::true_type {};

// One row's accumulators for Q queries: tile<T, 1, Q, PF>'s steps, without the hsum.
template <class T, int Q, bool PF>
CLIPRT_ROW_INLINE void row_acc(const T* row, int64_t d, const float* q, int64_t qstride,
                    typename Ops::V (&acc)[Q]) {
  const char* next = reinterpret_cast<const char*>(row) + kPrefetchBytes;
  constexpr int64_t kStep = Ops::W * static_cast<int64_t>(sizeof(T));
  constexpr int64_t kEvery = kStep >= 64 ? 1 : 64 / kStep;
  for (int j = 0; j < Q; ++j) acc[j] = Ops::zero();
  int64_t i = 0;
  for (; i + Ops::W <= d; i += Ops::W) {
    const typename Ops::V rv = Ops::load(row + i);
    if constexpr (PF) {
      if (kEvery == 1 || (i / Ops::W) % kEvery == 0)
        for (int64_t p = 0; p < kStep || p == 0; p += 64) CLIPRT_PREFETCH(next + p);
      next += kStep;
    }
    for (int j = 0; j < Q; ++j) acc[j] = Ops::fma(rv, Ops::loadq(q + j * qstride + i), acc[j]);
  }
  if (i < d) {
    const typename Ops::V rv = Ops::load_part(row + i, d - i);
    for (int j = 0; j < Q; ++j) acc[j] = Ops::fma(rv, Ops::loadq(q + j * qstride + i), acc[j]);
  }
}

// 16 consecutive rows against Q queries, one row after the other (a linear read; the
// rows' FMA chains are independent, so they overlap in the core), each row's accumulator
// summed by the transposed hsum: tile<T, 1, Q>'s scores bit for bit, with a fraction of
// the horizontal-sum instructions. Written out row pair by row pair (no arrays indexed by
// loop counters), so every partial sum stays in a register.
template <class T, int Q, bool PF, class O = Ops>
CLIPRT_TILE_NOINLINE void tile16(const T* rows, int64_t stride, const float* scales, int64_t d,
                                 const float* q, int64_t qstride, float* out, int64_t ld) {
  using V = typename O::V;
  V x[Q], y[Q], p0[Q], p1[Q], h0[Q], h1[Q], g0[Q], g1[Q];
#define CLIPRT_PAIR(dst, r)                                     \
  row_acc<T, Q, PF>(rows + (r) * stride, d, q, qstride, x);     \
  row_acc<T, Q, PF>(rows + ((r) + 1) * stride, d, q, qstride, y); \
  for (int j = 0; j < Q; ++j) dst[j] = O::sum8(x[j], y[j]);
  CLIPRT_PAIR(p0, 0)
  CLIPRT_PAIR(p1, 2)
  for (int j = 0; j < Q; ++j) h0[j] = O::sum4(p0[j], p1[j]);
  CLIPRT_PAIR(p0, 4)
  CLIPRT_PAIR(p1, 6)
  for (int j = 0; j < Q; ++j) h1[j] = O::sum4(p0[j], p1[j]);
  for (int j = 0; j < Q; ++j) g0[j] = O::sum2(h0[j], h1[j]);
  CLIPRT_PAIR(p0, 8)
  CLIPRT_PAIR(p1, 10)
  for (int j = 0; j < Q; ++j) h0[j] = O::sum4(p0[j], p1[j]);
  CLIPRT_PAIR(p0, 12)
  CLIPRT_PAIR(p1, 14)
#undef CLIPRT_PAIR
  for (int j = 0; j < Q; ++j) h1[j] = O::sum4(p0[j], p1[j]);
  for (int j = 0; j < Q; ++j) g1[j] = O::sum2(h0[j], h1[j]);
  for (int j = 0; j < Q; ++j) {
    V s = O::sum1(g0[j], g1[j]);
    if (scales) s = O::mul(s, O::loadq(scales));
    O::store(out + j * ld, s);
  }
}

// One or two queries where Ops has the transposed hsum: 16-row tiles, then single rows.
template <class T, int Q>
inline void rows_loop16(const BlockArgs& a) {
  const T* rows = static_cast<const T*>(a.rows);
  int64_t r0 = 0;
  for (; r0 + 16 <= a.nr; r0 += 16)
    tile16<T, Q, false>(rows + r0 * a.row_stride, a.row_stride,
                       a.scales ? a.scales + r0 : nullptr, a.d, a.qpack, a.qstride, a.out + r0,
                       a.ld);
  for (; r0 < a.nr; ++r0)
    tile<T, 1, Q>(rows + r0 * a.row_stride, a.row_stride,
                        a.scales ? a.scales + r0 : nullptr, a.d, a.qpack, a.qstride, a.out + r0,
                        a.ld);
}

// All rows of the block against queries [q0, q0 + Q): full R-row tiles, then single rows.
template <class T, int R, int Q, bool PF = false>
inline void rows_loop(const BlockArgs& a, int64_t q0) {
  const T* rows = static_cast<const T*>(a.rows);
  const float* q = a.qpack + q0 * a.qstride;
  float* out = a.out + q0 * a.ld;
  int64_t r0 = 0;
  for (; r0 + R <= a.nr; r0 += R)
    tile<T, R, Q, PF>(rows + r0 * a.row_stride, a.row_stride, a.scales ? a.scales + r0 : nullptr,
                  a.d, q, a.qstride, out + r0, a.ld);
  for (; r0 < a.nr; ++r0)
    tile<T, 1, Q>(rows + r0 * a.row_stride, a.row_stride, a.scales ? a.scales + r0 : nullptr,
                  a.d, q, a.qstride, out + r0, a.ld);
}

// rows_loop for a run-time query count 1..8 (a remainder tile).
template <class T, int R, bool PF = false>
inline void rows_loop_q(const BlockArgs& a, int64_t q0, int64_t nq) {
  switch (nq) {
    case 1: rows_loop<T, R, 1, PF>(a, q0); break;
    case 2: rows_loop<T, R, 2, PF>(a, q0); break;
    case 3: rows_loop<T, R, 3>(a, q0); break;
    case 4: rows_loop<T, R, 4>(a, q0); break;
    case 5: rows_loop<T, R, 5>(a, q0); break;
    case 6: rows_loop<T, R, 6>(a, q0); break;
    case 7: rows_loop<T, R, 7>(a, q0); break;
    default: rows_loop<T, R, 8>(a, q0); break;
  }
}

// Rows of the block widened to fp32 in scratch (exact for fp16 and int8), so that many
// queries pass over them without converting each row once per query tile. Same values,
// same summation order: the same scores as scoring the stored rows.
template <class T>
inline BlockArgs widened(const BlockArgs& a) {
  float* dst = static_cast<float*>(a.scratch);
  const T* rows = static_cast<const T*>(a.rows);
  for (int64_t r = 0; r < a.nr; ++r) {
    const T* src = rows + r * a.row_stride;
    float* out = dst + r * a.d;
    int64_t i = 0;
    for (; i + Ops::W <= a.d; i += Ops::W) Ops::store(out + i, Ops::load(src + i));
    if (i < a.d) {
      float tail[Ops::W];
      Ops::store(tail, Ops::load_part(src + i, a.d - i));
      for (int64_t l = 0; l < a.d - i; ++l) out[i + l] = tail[l];
    }
  }
  BlockArgs w = a;
  w.rows = dst;
  w.row_stride = a.d;
  return w;
}

template <class T>
inline void score_block_t(const BlockArgs& a) {
  static_assert(Ops::Q <= 8, "rows_loop_q handles at most 8 queries per tile");
  if (a.nq <= 2) {
    if constexpr (HasSum16<Ops>::value) {
      // One or two queries: the scan is memory-bound; rows are read strictly in order
      // (no software prefetch, see kPrefetchBytes), 16 at a time, with one
      // horizontal-sum tree for all 16.
      if (a.nq == 1)
        rows_loop16<T, 1>(a);
      else
        rows_loop16<T, 2>(a);
      return;
    }
    // One or two queries: the scan is memory-bound. A single FMA chain per row keeps up
    // with memory for fp32/fp16; int8 (4 x more rows per byte) needs R_FEW chains.
    constexpr int RF = sizeof(T) >= 2 ? 1 : Ops::R_FEW;
    rows_loop_q<T, RF, true>(a, 0, a.nq);
    return;
  }
  if constexpr (!std::is_same_v<T, float>) {
    // Enough query tiles that widening each row once is cheaper than per tile.
    if (a.nq >= 2 * Ops::Q && a.scratch) {
      score_block_t<float>(widened<T>(a));
      return;
    }
  }
  int64_t q0 = 0;
  // nq >= 3 here; the first tile may still be a remainder when nq < Q.
  if (a.nq < Ops::Q) {
    rows_loop_q<T, Ops::R, true>(a, 0, a.nq);
    return;
  }
  // The query loop is outside the row loop: a tile's Q queries stay in L1 while the
  // block's rows (sized by the driver to fit L2) stream past them.
  // Only the first pass reads the block from memory: it prefetches (the next block's head
  // included); later passes find the rows in L2.
  rows_loop<T, Ops::R, Ops::Q, true>(a, 0);
  for (q0 = Ops::Q; q0 + Ops::Q <= a.nq; q0 += Ops::Q) rows_loop<T, Ops::R, Ops::Q>(a, q0);
  if (q0 < a.nq) rows_loop_q<T, Ops::R>(a, q0, a.nq - q0);
}

inline void score_block_impl(DType dtype, const BlockArgs& a) {
  switch (dtype) {
    case DType::fp32: score_block_t<float>(a); break;
    case DType::fp16: score_block_t<uint16_t>(a); break;
    case DType::int8: score_block_t<int8_t>(a); break;
  }
}
