// Portable exact top-k: threads split the database, each keeps one bounded heap per
// query, heaps merge at the end. Summation order is fixed per row (independent of
// batch and thread count) so a score never depends on the call it came in.
#include "topk.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace cliprt {
namespace {

struct Hit {
  float score;
  int64_t id;
};

// "a ranks before b": higher score, then lower id.
inline bool better(const Hit& a, const Hit& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// A min-heap of the k best hits seen so far; its top is the worst kept hit.
class Heap {
 public:
  explicit Heap(int64_t k) : k_(k) { hits_.reserve(static_cast<size_t>(k)); }
  void push(float score, int64_t id) {
    Hit h{score, id};
    if (static_cast<int64_t>(hits_.size()) < k_) {
      hits_.push_back(h);
      std::push_heap(hits_.begin(), hits_.end(), better);
    } else if (better(h, hits_.front())) {
      std::pop_heap(hits_.begin(), hits_.end(), better);
      hits_.back() = h;
      std::push_heap(hits_.begin(), hits_.end(), better);
    }
  }
  const std::vector<Hit>& hits() const { return hits_; }

 private:
  int64_t k_;
  std::vector<Hit> hits_;
};

inline float dot(const float* a, const float* b, int64_t d) {
  float s = 0.f;
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void topk_fp32(const float* db, int64_t n, int64_t d, int64_t row_stride,
               const float* queries, int64_t nq, int64_t query_stride, int64_t k,
               int threads, float* out_scores, int64_t* out_ids) {
  if (threads < 1) threads = 1;
  const int64_t max_useful = std::max<int64_t>(1, n / 1024);
  const int nthreads = static_cast<int>(std::min<int64_t>(threads, max_useful));
  const int64_t kk = std::min(k, n);

  // heaps[t * nq + q]
  std::vector<Heap> heaps;
  heaps.reserve(static_cast<size_t>(nthreads * nq));
  for (int64_t i = 0; i < nthreads * nq; ++i) heaps.emplace_back(std::max<int64_t>(kk, 1));

  auto work = [&](int t) {
    const int64_t begin = n * t / nthreads, end = n * (t + 1) / nthreads;
    for (int64_t r = begin; r < end; ++r) {
      const float* row = db + r * row_stride;
      for (int64_t q = 0; q < nq; ++q) {
        const float s = dot(row, queries + q * query_stride, d);
        if (std::isnan(s)) continue;
        heaps[static_cast<size_t>(t * nq + q)].push(s, r);
      }
    }
  };
  if (nthreads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < nthreads; ++t) pool.emplace_back(work, t);
    for (auto& th : pool) th.join();
  }

  for (int64_t q = 0; q < nq; ++q) {
    std::vector<Hit> all;
    for (int t = 0; t < nthreads; ++t) {
      const auto& h = heaps[static_cast<size_t>(t * nq + q)].hits();
      all.insert(all.end(), h.begin(), h.end());
    }
    std::sort(all.begin(), all.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      const bool have = j < static_cast<int64_t>(all.size());
      out_scores[q * k + j] = have ? all[j].score : -std::numeric_limits<float>::infinity();
      out_ids[q * k + j] = have ? all[j].id : -1;
    }
  }
}

}  // namespace cliprt
