// Exact top-k by inner product over a row-major database. Knows nothing of Python.
#pragma once
#include <cstdint>

namespace cliprt {

// Results are ordered by score descending; equal scores order by lower id first.
// When k > n, the tail of each result row holds id -1 and score -inf (FAISS's convention).
// Rows whose score is NaN never enter the results.
void topk_fp32(const float* db, int64_t n, int64_t d, int64_t row_stride,
               const float* queries, int64_t nq, int64_t query_stride, int64_t k,
               int threads, float* out_scores, int64_t* out_ids);

}  // namespace cliprt
