// AVX-512 (F, BW, VL) kernel, with F16C for fp16 rows; chosen at run time. Row tails use
// masked loads, which never touch memory past the row. VNNI is not used: queries stay
// fp32 (quantising them would change the int8 contract, see topk.hpp).
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (GCC bug
// 105593), a false -Wuninitialized in every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "kernel.hpp"

namespace cliprt {
namespace {

struct Ops {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int R_FEW = 4;
  static constexpr int R = 4;
  static constexpr int Q = 6;

  static V zero() { return _mm512_setzero_ps(); }
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
  static V load_part(const int8_t* p, int64_t n) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(tail_mask(n), p)));
  }
};

#include "kernel_impl.hpp"

}  // namespace

void score_block_avx512(DType dtype, const BlockArgs& args) { score_block_impl(dtype, args); }

}  // namespace cliprt
#endif
