// AVX2 + FMA + F16C kernel (built with -mavx2 -mfma -mf16c; chosen at run time).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>
#include <type_traits>
#include <cstring>

#include "kernel.hpp"

namespace cliprt {
namespace {

struct Ops {
  using V = __m256;
  static constexpr int W = 8;
  static constexpr int R_FEW = 4;
  static constexpr int R = 2;
  static constexpr int Q = 5;

  static V zero() { return _mm256_setzero_ps(); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // Lanes (l, l+4), then (l, l+2), then (0, 1).
  static float hsum(V a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static V loadq(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // The row tail: copy into a zeroed vector-sized buffer (never read past the row).
  template <class T>
  static V load_part(const T* p, int64_t n) {
    alignas(32) T buf[8] = {};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(T));
    return load(buf);
  }
};

#include "kernel_impl.hpp"

}  // namespace

void score_block_avx2(DType dtype, const BlockArgs& args) { score_block_impl(dtype, args); }

}  // namespace cliprt
#endif
