// The AVX-512 (F, BW, VL + F16C) operations of the scoring kernel, shared by the avx512
// and avx512vnni translation units so both give the same fp32 and fp16 scores (and the
// same exact int8 scores). Included inside each unit's anonymous namespace, after
// <immintrin.h>; no include guard on purpose (one copy per unit).

struct Ops {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int R_FEW = 4;
  static constexpr int R = 4;
  static constexpr int Q = 6;

  static V zero() { return _mm512_setzero_ps(); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // Lanes (l, l+8), then (l, l+4), (l, l+2), (0, 1).
  static float hsum(V a) {
    const __m256 lo = _mm512_castps512_ps256(a);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static V loadq(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_part(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static V load_part(const uint16_t* p, int64_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask(n), p));
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V load_part(const int8_t* p, int64_t n) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(tail_mask(n), p)));
  }

  // hsum of 16 rows' accumulators at once, transposed (kernel_impl.hpp's tile16): each
  // step adds the same lane pairs as hsum, for several rows per instruction, so every row
  // gets hsum's result bit for bit (IEEE addition is commutative). sum8(a, b): lanes
  // 0-7 hold a's (l, l+8) sums, 8-15 b's.
  static V sum8(V a, V b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  // Two sum8 results: 128-bit lane k holds row k's (l, l+4) sums (rows a0, a1, b0, b1).
  static V sum4(V a, V b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
  }
  // Two sum4 results: lane k holds [(0, 2), (1, 3)] sums of a's row k, then of b's row k.
  static V sum2(V a, V b) {
    const __m512d x = _mm512_castps_pd(a), y = _mm512_castps_pd(b);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // Two sum2 results (rows 0-7, rows 8-15): the (0, 1) sums, row k + 4m in element
  // 4k + m; then every row's sum in its own element.
  static V sum1(V a, V b) {
    const V s = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);
  }
};
