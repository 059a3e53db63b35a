// Baseline kernel: portable C++ (SSE2 on x86-64, NEON on aarch64 via the compiler's
// auto-vectorizer). Eight lanes with separate multiply and add: no FMA is assumed.
#include <cstdint>
#include <type_traits>
#include <cstring>

#include "kernel.hpp"

namespace cliprt {
namespace {

struct Lanes8 {
  float v[8];
};

// IEEE half -> float for every bit pattern, built once: a lookup beats bit twiddling in
// the inner loop.
struct HalfTable {
  float f[65536];
  HalfTable() {
    for (uint32_t h = 0; h < 65536; ++h) f[h] = half_to_float(static_cast<uint16_t>(h));
  }
};
const HalfTable& half_table() {
  static const HalfTable table;
  return table;
}

struct Ops {
  using V = Lanes8;
  static constexpr int W = 8;
  static constexpr int R_FEW = 4;
  static constexpr int R = 2;
  static constexpr int Q = 4;

  static V zero() { return V{}; }
  static V fma(const V& a, const V& b, const V& c) {
    V out;
    for (int l = 0; l < 8; ++l) out.v[l] = a.v[l] * b.v[l] + c.v[l];  // two roundings
    return out;
  }
  // Lanes (l, l+4), then (l, l+2), then (0, 1): the tree every 8-lane ISA uses.
  static float hsum(const V& a) {
    float s4[4], s2[2];
    for (int l = 0; l < 4; ++l) s4[l] = a.v[l] + a.v[l + 4];
    for (int l = 0; l < 2; ++l) s2[l] = s4[l] + s4[l + 2];
    return s2[0] + s2[1];
  }
  static V loadq(const float* p) {
    V out;
    std::memcpy(out.v, p, sizeof(out.v));
    return out;
  }
  static V load(const float* p) { return loadq(p); }
  static V load(const uint16_t* p) {
    const float* t = half_table().f;
    V out;
    for (int l = 0; l < 8; ++l) out.v[l] = t[p[l]];
    return out;
  }
  static V load(const int8_t* p) {
    V out;
    for (int l = 0; l < 8; ++l) out.v[l] = static_cast<float>(p[l]);
    return out;
  }
  static void store(float* p, const V& v) { std::memcpy(p, v.v, sizeof(v.v)); }
  template <class T>
  static V load_part(const T* p, int64_t n) {
    T buf[8] = {};
    for (int64_t l = 0; l < n; ++l) buf[l] = p[l];
    return load(buf);
  }
};

#include "kernel_impl.hpp"

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise into a float exponent
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400u));
      bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void score_block_baseline(DType dtype, const BlockArgs& args) { score_block_impl(dtype, args); }

}  // namespace cliprt
