// The search driver: threads split the database, each scores blocks of rows against the
// whole batch (every row read from memory once per call), keeps one bounded heap per
// query behind a threshold test, and the heaps merge at the end.
#include "topk.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "isa.hpp"
#include "kernel.hpp"
#include "threads.hpp"

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
// Work (row bytes x query groups) a part must get to be worth a thread: waking a pool
// worker costs tens of microseconds, and on a busy machine it can wait for a core.
constexpr int64_t kMinBytesPerThread = 1 << 20;
// A search never splits into more parts than this, whatever `threads` asks.
constexpr int kMaxParts = 256;
constexpr int kPartsPerThread = 4;
// Bytes of per-part heaps (parts x queries x min(k, n) hits) a split may add; beyond it
// fewer parts run (a huge k must not be multiplied by the thread count).
constexpr int64_t kHeapBudgetBytes = int64_t{256} << 20;

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
  std::vector<float> scratch;    // scratch_bytes(block, d) for the kernel

  void run(const Database& db, const float* qpack, int64_t qstride, int64_t nq, int64_t kk,
           int64_t begin, int64_t end, int64_t block, ScoreBlockFn score_block,
           const QuantQueries* quant) {
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
                  block,
                  scratch.empty() ? nullptr : scratch.data(),
                  threshold.data(),
                  quant};
      score_block(db.dtype, a);
      for (int64_t q = 0; q < nq; ++q) {
        const float* s = scores.data() + q * block;
        float thr = threshold[q];
        for (int64_t r = 0; r < nr; ++r) {
          // Once the heap is full almost every score fails: skip 16 at a time (a loop
          // the compiler vectorizes).
          if ((r & 15) == 0 && r + 16 <= nr) {
            bool any = false;
            for (int l = 0; l < 16; ++l) any |= s[r + l] >= thr;
            if (!any) {
              r += 15;
              continue;
            }
          }
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

// Queries quantized to int8 for the VNNI path (see QuantQueries in kernel.hpp): one
// symmetric scale per query, and a margin that provably covers the quantization error
// and the rounding of both the approximate and the exact fp32 score, computed in double
// and rounded up. The margin is what keeps the int8 path exact: a row is pruned only when
// even its largest possible exact score is below the heap's threshold.
struct QuantStore {
  std::vector<int8_t> q;
  std::vector<float> scale, margin;
  std::vector<int32_t> sum;
  std::vector<uint8_t> exact_only;
  QuantQueries view{};

  const QuantQueries* make(const float* qpack, int64_t qstride, int64_t nq, int64_t d) {
    const int64_t stride = (d + 63) / 64 * 64;
    q.assign(static_cast<size_t>(nq * stride), 0);
    scale.assign(static_cast<size_t>(nq), 0.f);
    margin.assign(static_cast<size_t>(nq), 0.f);
    sum.assign(static_cast<size_t>(nq), 0);
    exact_only.assign(static_cast<size_t>(nq), 0);
    constexpr double u = 1.0 / (1 << 24);  // fp32 unit roundoff
    for (int64_t j = 0; j < nq; ++j) {
      const float* x = qpack + j * qstride;
      double amax = 0, l1 = 0;
      for (int64_t i = 0; i < d; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        l1 += std::fabs(static_cast<double>(x[i]));
      }
      // Far from fp32's range limits the relative rounding bounds below hold; elsewhere
      // (and for a zero query, which scores 0 everywhere) score every row exactly.
      const float sq = static_cast<float>(amax / 127.0);
      if (!(amax > 0x1p-60 && amax < 0x1p60)) {
        exact_only[static_cast<size_t>(j)] = 1;
        continue;
      }
      double err = 0;
      int32_t s = 0;
      int8_t* qj = q.data() + j * stride;
      for (int64_t i = 0; i < d; ++i) {
        const double v = std::nearbyint(static_cast<double>(x[i]) / sq);
        const int8_t qi = static_cast<int8_t>(std::clamp(v, -127.0, 127.0));
        qj[i] = qi;
        s += qi;
        err += std::fabs(static_cast<double>(x[i]) - static_cast<double>(sq) * qi);
      }
      // |row_i| <= 127: quantization error <= 127 * err. The exact kernel's fp32 sum of d
      // products and the approximate score's few fp32 operations each err by at most
      // (2d + 24) u of 127 * (l1 + err) (a generous gamma_d bound); +1% for the double
      // arithmetic here.
      const double m = 127.0 * (err + (2.0 * static_cast<double>(d) + 24.0) * u * (l1 + err));
      scale[static_cast<size_t>(j)] = sq;
      sum[static_cast<size_t>(j)] = s;
      margin[static_cast<size_t>(j)] = std::nextafter(static_cast<float>(m * 1.01),
                                                      std::numeric_limits<float>::infinity());
    }
    view = {q.data(), stride, scale.data(), sum.data(), margin.data(), exact_only.data()};
    return &view;
  }
};

// First row of part t of `parts` over n rows: floor(n * t / parts), without forming n * t.
int64_t part_begin(int64_t n, int t, int parts) {
  return n / parts * t + n % parts * t / parts;
}

// Threads a search may use: what the caller asked (<= 0: every usable CPU), at most
// kMaxParts (parallel_parts never runs more than usable_cpus() of them at once).
int plan_threads(int64_t threads) {
  return static_cast<int>(std::min<int64_t>(threads <= 0 ? usable_cpus() : threads, kMaxParts));
}

// How many parts (each its own heaps, claimed by whichever thread is free) a search splits
// into: kPartsPerThread per thread, so a thread the OS preempts on a busy machine holds
// up only a small part; at most one per min_rows rows, at most kMaxParts, and few enough
// that their heaps stay under kHeapBudgetBytes.
int plan_parts(int threads, int64_t n, int64_t min_rows, int64_t heap_slots) {
  int64_t want = std::min<int64_t>(int64_t{threads} * kPartsPerThread, kMaxParts);
  want = std::min<int64_t>(want, std::max<int64_t>(1, n / std::max<int64_t>(1, min_rows)));
  const int64_t per_part = std::max<int64_t>(1, heap_slots) * static_cast<int64_t>(sizeof(Hit));
  want = std::min<int64_t>(want, std::max<int64_t>(1, kHeapBudgetBytes / per_part));
  return static_cast<int>(std::max<int64_t>(1, want));
}

}  // namespace

// a * b, or std::length_error when it does not fit in int64 (sizes of buffers to allocate).
int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<int64_t>::max() / a))
    throw std::length_error(std::string("top-k: ") + what + " is too large (" + std::to_string(a) +
                            " x " + std::to_string(b) + " overflows); ask for fewer queries or a "
                            "smaller k.");
  return a * b;
}

void search(const Database& db, const Queries& queries, int64_t k, int64_t threads,
            float* out_scores, int64_t* out_ids, int64_t min_rows_per_thread) {
  const int64_t n = std::max<int64_t>(0, db.n), d = db.d, nq = std::max<int64_t>(0, queries.nq);
  if (k < 0) throw std::invalid_argument("top-k: k must be >= 0, got " + std::to_string(k));
  const float ninf = -std::numeric_limits<float>::infinity();
  checked_mul(nq, k, "queries x k");
  // Nothing to score: every slot a miss, and no division below ever sees a zero.
  if (nq == 0 || k == 0) return;
  const int64_t kk = std::min(k, n);
  if (kk == 0 || d <= 0) {
    std::fill(out_scores, out_scores + nq * k, ninf);
    std::fill(out_ids, out_ids + nq * k, int64_t{-1});
    return;
  }

  // Queries packed into zero-padded rows so the kernels may load whole vectors past d.
  const int64_t qstride = (d + kQueryAlign - 1) / kQueryAlign * kQueryAlign;
  std::vector<float> qpack(static_cast<size_t>(checked_mul(nq, qstride, "queries x dim")), 0.f);
  for (int64_t q = 0; q < nq; ++q)
    std::copy(queries.data + q * queries.stride, queries.data + q * queries.stride + d,
              qpack.begin() + q * qstride);

  const int64_t row_bytes = checked_mul(d, static_cast<int64_t>(elem_size(db.dtype)), "dim");
  const int64_t block = std::clamp<int64_t>(kBlockBytes / row_bytes / 8 * 8, 8, 1024);
  const int64_t qgroups = (nq + 3) / 4;  // >= 1 here
  if (min_rows_per_thread <= 0) {
    const int64_t work_per_row = row_bytes > kMinBytesPerThread / qgroups
                                     ? kMinBytesPerThread
                                     : row_bytes * qgroups;
    min_rows_per_thread = std::max<int64_t>(256, kMinBytesPerThread / work_per_row);
  }
  const int nthreads = plan_threads(threads);
  const int nparts =
      plan_parts(nthreads, n, min_rows_per_thread, checked_mul(nq, kk, "queries x k"));

  // Everything is allocated before any thread starts: a thread never throws.
  std::vector<Worker> workers(static_cast<size_t>(nparts));
  for (auto& w : workers) {
    w.hits.resize(static_cast<size_t>(nq * kk));
    w.size.assign(static_cast<size_t>(nq), 0);
    w.threshold.assign(static_cast<size_t>(nq), ninf);
    w.scores.resize(static_cast<size_t>(nq * block));
    // Only many-query blocks use scratch (widened or packed rows).
    if (nq >= 3) w.scratch.resize(static_cast<size_t>(scratch_bytes(block, d) / 4));
  }
  const ActiveKernel kernel = active_kernel();
  const ScoreBlockFn score_block = kernel.score_block;
  QuantStore quant_store;
  const QuantQueries* quant = nullptr;
  if (db.dtype == DType::int8 && d <= kQuantMaxDim && kernel.uses_quant)
    quant = quant_store.make(qpack.data(), qstride, nq, d);
  parallel_parts(nparts, nthreads, [&](int t) {
    workers[static_cast<size_t>(t)].run(db, qpack.data(), qstride, nq, kk, part_begin(n, t, nparts),
                                        part_begin(n, t + 1, nparts), block, score_block,
                                        quant);
  });

  std::vector<Hit> all;
  for (int64_t q = 0; q < nq; ++q) {
    all.clear();
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
