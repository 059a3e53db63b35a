// The search driver: threads split the database, each scores blocks of rows against the
// whole batch (every row read from memory once per call), keeps one bounded heap per
// query behind a threshold test, and the heaps merge at the end.
#include "topk.hpp"

#include <algorithm>
#include <limits>
#include <thread>
#include <vector>

#include "isa.hpp"
#include "kernel.hpp"

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

// Rows per block: the block's rows stay in L2 while every query tile passes over them.
constexpr int64_t kBlockBytes = 96 * 1024;
// Work (row bytes x query groups) a thread must get to be worth starting: threads start
// per call, and on a busy machine a new thread can wait milliseconds for a core.
constexpr int64_t kMinBytesPerThread = 4 << 20;

size_t elem_size(DType t) {
  switch (t) {
    case DType::fp32: return 4;
    case DType::fp16: return 2;
    case DType::int8: return 1;
  }
  return 4;
}

// One thread's share: rows [begin, end), one bounded heap per query (heap q lives in
// hits[q*kk, q*kk + size[q])), its top the worst kept hit.
struct Worker {
  std::vector<Hit> hits;
  std::vector<int64_t> size;
  std::vector<float> threshold;  // a score must be >= this to be tried against the heap
  std::vector<float> scores;     // nq x block rows

  void run(const Database& db, const float* qpack, int64_t qstride, int64_t nq, int64_t kk,
           int64_t begin, int64_t end, int64_t block, ScoreBlockFn score_block) {
    const size_t esz = elem_size(db.dtype);
    const char* base = static_cast<const char*>(db.rows);
    for (int64_t r0 = begin; r0 < end; r0 += block) {
      const int64_t nr = std::min(block, end - r0);
      BlockArgs a{base + r0 * db.row_stride * static_cast<int64_t>(esz),
                  db.row_stride,
                  db.scales ? db.scales + r0 : nullptr,
                  nr,
                  db.d,
                  qpack,
                  qstride,
                  nq,
                  scores.data(),
                  block};
      score_block(db.dtype, a);
      for (int64_t q = 0; q < nq; ++q) {
        const float* s = scores.data() + q * block;
        float thr = threshold[q];
        for (int64_t r = 0; r < nr; ++r) {
          // NaN fails every comparison, so a NaN score never reaches the heap.
          if (!(s[r] >= thr)) continue;
          const int64_t row = r0 + r;
          push(q, kk, Hit{s[r], db.ids ? db.ids[row] : row});
          thr = threshold[q];
        }
      }
    }
  }

  void push(int64_t q, int64_t kk, Hit h) {
    Hit* heap = hits.data() + q * kk;
    int64_t& n = size[q];
    if (n < kk) {
      heap[n++] = h;
      std::push_heap(heap, heap + n, better);
    } else if (better(h, heap[0])) {
      std::pop_heap(heap, heap + n, better);
      heap[n - 1] = h;
      std::push_heap(heap, heap + n, better);
    } else {
      return;
    }
    if (n == kk) threshold[q] = heap[0].score;
  }
};

}  // namespace

void search(const Database& db, const Queries& queries, int64_t k, int threads,
            float* out_scores, int64_t* out_ids, int64_t min_rows_per_thread) {
  const int64_t n = db.n, d = db.d, nq = queries.nq;
  const int64_t kk = std::min(k, n);
  const float ninf = -std::numeric_limits<float>::infinity();
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Queries packed into zero-padded rows so the kernels may load whole vectors past d.
  const int64_t qstride = (d + kQueryAlign - 1) / kQueryAlign * kQueryAlign;
  std::vector<float> qpack(static_cast<size_t>(nq * qstride), 0.f);
  for (int64_t q = 0; q < nq; ++q)
    std::copy(queries.data + q * queries.stride, queries.data + q * queries.stride + d,
              qpack.begin() + q * qstride);

  const int64_t row_bytes = std::max<int64_t>(1, d * static_cast<int64_t>(elem_size(db.dtype)));
  const int64_t block = std::clamp<int64_t>(kBlockBytes / row_bytes / 8 * 8, 8, 1024);
  if (min_rows_per_thread <= 0)
    min_rows_per_thread = std::max<int64_t>(256, kMinBytesPerThread / (row_bytes * ((nq + 3) / 4)));
  const int64_t by_rows = std::max<int64_t>(1, n / min_rows_per_thread);
  const int nthreads = static_cast<int>(std::min<int64_t>(threads, by_rows));

  // Everything is allocated before any thread starts: a thread never throws.
  std::vector<Worker> workers(static_cast<size_t>(nthreads));
  if (kk > 0) {
    for (auto& w : workers) {
      w.hits.resize(static_cast<size_t>(nq * kk));
      w.size.assign(static_cast<size_t>(nq), 0);
      w.threshold.assign(static_cast<size_t>(nq), ninf);
      w.scores.resize(static_cast<size_t>(nq * block));
    }
    const ScoreBlockFn score_block = active_score_block();
    auto work = [&](int t) {
      workers[static_cast<size_t>(t)].run(db, qpack.data(), qstride, nq, kk, n * t / nthreads,
                                          n * (t + 1) / nthreads, block, score_block);
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(nthreads - 1));
    for (int t = 1; t < nthreads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
  }

  std::vector<Hit> all;
  for (int64_t q = 0; q < nq; ++q) {
    all.clear();
    if (kk > 0)
      for (const auto& w : workers)
        all.insert(all.end(), w.hits.begin() + q * kk, w.hits.begin() + q * kk + w.size[q]);
    const int64_t take = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
    std::partial_sort(all.begin(), all.begin() + take, all.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      out_scores[q * k + j] = j < take ? all[j].score : ninf;
      out_ids[q * k + j] = j < take ? all[j].id : -1;
    }
  }
}

}  // namespace cliprt
