// The AArch64 NEON operations of the scoring kernel, shared by the neon and neondot
// translation units so both give the same fp32, fp16 and exact int8 scores. Included
// inside each unit's anonymous namespace, after <arm_neon.h>; no include guard on
// purpose (one copy per unit).

struct Pair {
  float32x4_t lo, hi;
};

struct Ops {
  using V = Pair;
  static constexpr int W = 8;
  static constexpr int R_FEW = 4;
  static constexpr int R = 2;
  static constexpr int Q = 6;

  static V zero() { return {vdupq_n_f32(0.f), vdupq_n_f32(0.f)}; }
  static V fma(V a, V b, V c) { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }
  // Lanes (l, l+4), then (l, l+2), then (0, 1).
  static float hsum(V a) {
    const float32x4_t s4 = vaddq_f32(a.lo, a.hi);
    const float32x2_t s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    return vget_lane_f32(s2, 0) + vget_lane_f32(s2, 1);
  }
  static V loadq(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static V load(const float* p) { return loadq(p); }
  static V load(const uint16_t* p) {
    const uint16x8_t h = vld1q_u16(p);
    return {vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))),
            vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h)))};
  }
  static V load(const int8_t* p) {
    const int16x8_t w = vmovl_s8(vld1_s8(p));
    return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)))};
  }
  static void store(float* p, V v) {
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
  }
  template <class T>
  static V load_part(const T* p, int64_t n) {
    T buf[8] = {};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(T));
    return load(buf);
  }
};
