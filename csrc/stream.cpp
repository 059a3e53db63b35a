// The memory-read floor for benchmarks: every byte of a matrix read once, split over
// threads like a search, with the least work per byte (an XOR of 16-byte words). The
// benchmark takes the best of this and other read methods (numpy, torch) as its floor.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#include "threads.hpp"
#include "topk.hpp"

namespace cliprt {
namespace {

// One row's bytes XORed into acc: 128 bytes per step into eight independent 16-byte
// lanes (SSE2 is the x86-64 base ISA; loads this wide already outrun DRAM per core), so
// the loop is bound by memory, not by a dependency chain or the load width.
#if defined(__SSE2__) || defined(_M_X64)
using Lane = __m128i;
inline Lane lane_zero() { return _mm_setzero_si128(); }
inline Lane lane_load(const char* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline Lane lane_xor(Lane a, Lane b) { return _mm_xor_si128(a, b); }
inline uint64_t lane_fold(Lane a) {
  uint64_t w[2];
  std::memcpy(w, &a, sizeof w);
  return w[0] ^ w[1];
}
#else
struct Lane {
  uint64_t w[2];
};
inline Lane lane_zero() { return Lane{{0, 0}}; }
inline Lane lane_load(const char* p) {
  Lane l;
  std::memcpy(l.w, p, sizeof l.w);
  return l;
}
inline Lane lane_xor(Lane a, Lane b) { return Lane{{a.w[0] ^ b.w[0], a.w[1] ^ b.w[1]}}; }
inline uint64_t lane_fold(Lane a) { return a.w[0] ^ a.w[1]; }
#endif

uint64_t xor_rows(const char* base, int64_t begin, int64_t end, int64_t row_bytes,
                  int64_t stride_bytes) {
  Lane acc[8];
  for (auto& a : acc) a = lane_zero();
  uint64_t tail = 0;
  // Contiguous rows read as one run, so steps cross row boundaries.
  const bool contiguous = stride_bytes == row_bytes;
  const int64_t runs = contiguous ? (end > begin ? 1 : 0) : end - begin;
  const int64_t run_bytes = contiguous ? (end - begin) * row_bytes : row_bytes;
  for (int64_t r = 0; r < runs; ++r) {
    const char* p = base + (contiguous ? begin : begin + r) * stride_bytes;
    int64_t b = 0;
    for (; b + 128 <= run_bytes; b += 128)
      for (int l = 0; l < 8; ++l) acc[l] = lane_xor(acc[l], lane_load(p + b + 16 * l));
    for (; b + 16 <= run_bytes; b += 16) acc[0] = lane_xor(acc[0], lane_load(p + b));
    for (; b < run_bytes; ++b) tail ^= static_cast<unsigned char>(p[b]);
  }
  uint64_t out = tail;
  for (const Lane& a : acc) out ^= lane_fold(a);
  return out;
}

}  // namespace

uint64_t stream_read(const void* base, int64_t n, int64_t row_bytes, int64_t stride_bytes,
                     int64_t threads) {
  if (threads <= 0) threads = usable_cpus();
  const int nt = static_cast<int>(
      std::min<int64_t>({threads, std::max<int64_t>(1, n), int64_t{usable_cpus()}}));
  std::vector<uint64_t> part(static_cast<size_t>(nt), 0);
  const char* p = static_cast<const char*>(base);
  auto work = [&](int t) {
    part[static_cast<size_t>(t)] =
        xor_rows(p, n / nt * t + n % nt * t / nt, n / nt * (t + 1) + n % nt * (t + 1) / nt,
                 row_bytes, stride_bytes);
  };
  parallel_parts(nt, nt, work);
  uint64_t out = 0;
  for (uint64_t v : part) out ^= v;
  return out;
}

}  // namespace cliprt
