// The memory-read floor for benchmarks: every byte of a matrix read once, split over
// threads like a search, with the least work per byte (an XOR of 64-bit words).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "threads.hpp"
#include "topk.hpp"

namespace cliprt {
namespace {

uint64_t xor_rows(const char* base, int64_t begin, int64_t end, int64_t row_bytes,
                  int64_t stride_bytes) {
  uint64_t acc[8] = {};
  const int64_t words = row_bytes / 8;
  for (int64_t r = begin; r < end; ++r) {
    const char* row = base + r * stride_bytes;
    int64_t w = 0;
    for (; w + 8 <= words; w += 8) {
      uint64_t v[8];
      std::memcpy(v, row + w * 8, sizeof v);
      for (int l = 0; l < 8; ++l) acc[l] ^= v[l];
    }
    for (; w < words; ++w) {
      uint64_t v;
      std::memcpy(&v, row + w * 8, sizeof v);
      acc[0] ^= v;
    }
    for (int64_t b = words * 8; b < row_bytes; ++b) acc[1] ^= static_cast<unsigned char>(row[b]);
  }
  uint64_t out = 0;
  for (uint64_t a : acc) out ^= a;
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
