// Exact top-k by inner product over a row-major database. Knows nothing of Python.
//
// Contract:
//   * Rows are fp32, fp16 (IEEE half, as uint16 bits) or int8 with one fp32 scale per row;
//     queries are fp32. Every score accumulates in fp32 (never fp16); an int8 score is
//     scale[r] * dot(int8 row, query), i.e. the exact score of the dequantized row.
//   * Results are ordered by score descending; equal scores order by lower id first.
//   * When k > n, the tail of each result row holds id -1 and score -inf (FAISS's
//     convention). Rows whose score is NaN never enter the results.
//   * A score depends only on (row, query, ISA): the summation order is fixed per ISA and
//     is the same for every batch size and thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cliprt {

enum class DType { fp32, fp16, int8 };

struct Database {
  const void* rows = nullptr;      // n rows of d elements of `dtype`
  DType dtype = DType::fp32;
  int64_t n = 0;
  int64_t d = 0;
  int64_t row_stride = 0;          // elements between row starts (>= d)
  const float* scales = nullptr;   // int8 only: n per-row scales
  const int64_t* ids = nullptr;    // optional: n user ids (null: the row position)
};

struct Queries {
  const float* data = nullptr;
  int64_t nq = 0;
  int64_t stride = 0;              // elements between query starts (>= d)
};

// Fills out_scores/out_ids (nq x k, row-major). nq, n or k may be 0 (k == 0 or nq == 0:
// nothing is written). The database splits into up to 4 parts per thread (threads <= 0:
// one thread per usable CPU), fewer when a part would get less than min_rows_per_thread
// rows (<= 0: enough work to be worth a thread, see topk.cpp), never more than 256; the
// parts run on at most min(threads, usable_cpus()) threads of the persistent pool, the
// caller included. None of this changes any score. Throws
// std::length_error when nq x k or nq x d overflows, std::invalid_argument for k < 0.
void search(const Database& db, const Queries& queries, int64_t k, int64_t threads,
            float* out_scores, int64_t* out_ids, int64_t min_rows_per_thread = 0);

// The ISAs this machine can run, worst first; the active one; and a switch for tests and
// benchmarks (CLIPRT_ISA in the environment sets it at load). set_isa throws
// std::invalid_argument for an unknown or unsupported name.
std::vector<std::string> available_isas();
std::string current_isa();
void set_isa(const std::string& name);

// Reads every byte of n rows (row_bytes each, stride_bytes apart) with `threads` threads
// and returns an XOR fold of the bytes read (it changes with any one byte; its value may
// depend on the split): the memory-read floor of a scan, one of the benchmark's floors.
uint64_t stream_read(const void* base, int64_t n, int64_t row_bytes, int64_t stride_bytes,
                     int64_t threads);

}  // namespace cliprt
