// A stand-alone check of the top-k kernel (csrc/, without Python or pybind11) against a
// float64 reference: every ISA the CPU offers, fp32/fp16/int8 rows, 1 and several
// threads, awkward sizes, batch and thread invariance, and the int8 screening ISAs
// (neondot, avx512vnni) bit-equal to their exact ISA (neon, avx512).
//
// It is what CI runs for aarch64 under qemu-user (scripts/aarch64-kernel-check.sh): a
// static binary starts in milliseconds under emulation, where the Python suite of
// tests/kernel needs an arm64 root filesystem and about 20 minutes. It mirrors
// tests/kernel/reference.py (error bound, tie order, FAISS tail) and the core cases of
// tests/kernel/test_reference.py, test_contract.py and test_int8_screen.py; the Python
// suite stays the full contract on the machines that build the extension.
//
//   kernel_check [--expect-isas a,b,c]   exit 0: every check passed; 1: a check failed
//
// --expect-isas fails the run unless available_isas() is exactly that list, so that an
// emulated core that lost dotprod cannot pass by skipping the neondot kernel.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/topk.hpp"

namespace {

using cliprt::DType;

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond, ...)                                  \
  do {                                                    \
    ++g_checks;                                           \
    if (!(cond)) {                                        \
      if (++g_failures <= 20) {                           \
        std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
        std::fprintf(stderr, __VA_ARGS__);               \
        std::fputc('\n', stderr);                         \
      }                                                   \
    }                                                     \
  } while (0)

const char* dtype_name(DType t) {
  return t == DType::fp32 ? "fp32" : t == DType::fp16 ? "fp16" : "int8";
}

// IEEE half <-> float, written here independently of the kernel's half_to_float.
uint16_t float_to_half(float f) {  // round to nearest even; inputs here are normal-range
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (exp <= 0) {  // subnormal half (or zero)
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // may carry into the exponent
  return static_cast<uint16_t>(sign | h);
}

double half_to_double(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? std::nan("") : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

// A database in the kernel's storage and as float64 (what the kernel's rows mean).
struct Db {
  DType dtype;
  int64_t n, d;
  std::vector<float> f32;
  std::vector<uint16_t> f16;
  std::vector<int8_t> i8;
  std::vector<float> scales;
  std::vector<double> exact;  // n x d

  cliprt::Database view() const {
    cliprt::Database db;
    db.dtype = dtype;
    db.n = n;
    db.d = d;
    db.row_stride = d;
    db.rows = dtype == DType::fp32   ? static_cast<const void*>(f32.data())
              : dtype == DType::fp16 ? static_cast<const void*>(f16.data())
                                     : static_cast<const void*>(i8.data());
    db.scales = dtype == DType::int8 ? scales.data() : nullptr;
    return db;
  }
};

// Stores x (n x d, fp32) as `dtype`, the way cliprt.runtime.Index.add does: int8 rows
// are round(x / s) with s = max|x| / 127 per row.
Db make_db(const std::vector<float>& x, int64_t n, int64_t d, DType dtype) {
  Db db{dtype, n, d, {}, {}, {}, {}, std::vector<double>(n * d)};
  if (dtype == DType::fp32) {
    db.f32 = x;
    for (int64_t i = 0; i < n * d; ++i) db.exact[i] = x[i];
  } else if (dtype == DType::fp16) {
    db.f16.resize(n * d);
    for (int64_t i = 0; i < n * d; ++i) {
      db.f16[i] = float_to_half(x[i]);
      db.exact[i] = half_to_double(db.f16[i]);
    }
  } else {
    db.i8.resize(n * d);
    db.scales.resize(n);
    for (int64_t r = 0; r < n; ++r) {
      float m = 0;
      for (int64_t j = 0; j < d; ++j) m = std::max(m, std::fabs(x[r * d + j]));
      const float s = m > 0 ? m / 127.0f : 1.0f;
      db.scales[r] = s;
      for (int64_t j = 0; j < d; ++j) {
        const float q = std::nearbyint(x[r * d + j] / s);
        db.i8[r * d + j] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, q)));
        db.exact[r * d + j] = static_cast<double>(s) * db.i8[r * d + j];
      }
    }
  }
  return db;
}

std::vector<float> normal(std::mt19937_64& rng, int64_t count) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Result {
  std::vector<float> scores;
  std::vector<int64_t> ids;
  bool operator==(const Result& o) const {
    // Bit for bit (NaN never appears in results; -inf == -inf).
    return ids == o.ids && scores.size() == o.scores.size() &&
           std::memcmp(scores.data(), o.scores.data(), scores.size() * 4) == 0;
  }
};

Result run(const Db& db, const float* q, int64_t nq, int64_t k, int64_t threads) {
  Result r{std::vector<float>(nq * k), std::vector<int64_t>(nq * k)};
  cliprt::Queries qs{q, nq, db.d};
  cliprt::search(db.view(), qs, k, threads, r.scores.data(), r.ids.data(), 1);
  return r;
}

// tests/kernel/reference.py's check_topk: each score is the row's float64 score within
// d * 2^-23 * sum|r_i q_i|, sorted best first with ties by lower id, nothing left out
// scores better, and the tail past n is (-1, -inf).
void check_topk(const Result& r, const Db& db, const float* q, int64_t nq, int64_t k,
                const std::string& what) {
  const int64_t n = db.n, d = db.d, kk = std::min(k, n);
  std::vector<double> ref(n), tol(n);
  for (int64_t qi = 0; qi < nq; ++qi) {
    for (int64_t row = 0; row < n; ++row) {
      double s = 0, a = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double p = db.exact[row * d + j] * static_cast<double>(q[qi * d + j]);
        s += p;
        a += std::fabs(p);
      }
      ref[row] = s;
      tol[row] = a * (d + 2) * std::ldexp(1.0, -23) + 1e-30;
    }
    const float* sc = &r.scores[qi * k];
    const int64_t* id = &r.ids[qi * k];
    std::vector<char> taken(n, 0);
    double worst_in = INFINITY, tol_in = 0;
    for (int64_t j = 0; j < kk; ++j) {
      const int64_t i = id[j];
      CHECK(i >= 0 && i < n, "%s q%lld: id %lld out of range", what.c_str(), (long long)qi,
            (long long)i);
      if (i < 0 || i >= n) return;
      CHECK(!taken[i], "%s q%lld: id %lld twice", what.c_str(), (long long)qi, (long long)i);
      taken[i] = 1;
      CHECK(std::fabs(sc[j] - ref[i]) < tol[i] * 1.01, "%s q%lld: score of row %lld is %.9g, "
            "float64 says %.9g (bound %.3g)", what.c_str(), (long long)qi, (long long)i,
            sc[j], ref[i], tol[i]);
      if (j > 0) {
        CHECK(sc[j - 1] >= sc[j], "%s q%lld: not sorted at %lld", what.c_str(), (long long)qi,
              (long long)j);
        if (sc[j - 1] == sc[j])
          CHECK(id[j - 1] < id[j], "%s q%lld: tie not broken by lower id", what.c_str(),
                (long long)qi);
      }
      worst_in = std::min(worst_in, ref[i]);
      tol_in = std::max(tol_in, tol[i]);
    }
    double best_out = -INFINITY, tol_out = 0;
    for (int64_t row = 0; row < n; ++row)
      if (!taken[row]) {
        best_out = std::max(best_out, ref[row]);
        tol_out = std::max(tol_out, tol[row]);
      }
    if (kk < n)
      CHECK(best_out <= worst_in + tol_in + tol_out, "%s q%lld: a row left out scores %.9g > "
            "%.9g", what.c_str(), (long long)qi, best_out, worst_in);
    for (int64_t j = kk; j < k; ++j)
      CHECK(id[j] == -1 && std::isinf(sc[j]) && sc[j] < 0, "%s q%lld: tail %lld is not (-1, "
            "-inf)", what.c_str(), (long long)qi, (long long)j);
  }
}

constexpr int64_t kBatches[] = {1, 3, 16, 33};
constexpr int64_t kMaxBatch = 33;

// test_reference.py's test_matches_reference: each k, 1 and 4 threads bit-equal, and a
// query scores the same whichever batch it comes in.
void check_shape(const std::string& isa, DType dtype, int64_t n, int64_t d) {
  std::mt19937_64 rng(static_cast<uint64_t>(n * 1000 + d));
  const Db db = make_db(normal(rng, n * d), n, d, dtype);
  const std::vector<float> q = normal(rng, kMaxBatch * d);
  const std::string tag =
      isa + " " + dtype_name(dtype) + " n=" + std::to_string(n) + " d=" + std::to_string(d);
  for (int64_t k : {int64_t{1}, int64_t{10}, n, n + 5}) {
    const std::string what = tag + " k=" + std::to_string(k);
    const Result one = run(db, q.data(), kMaxBatch, k, 1);
    check_topk(one, db, q.data(), kMaxBatch, k, what);
    const Result four = run(db, q.data(), kMaxBatch, k, 4);
    CHECK(one == four, "%s: 1 and 4 threads differ", what.c_str());
    for (int64_t want : kBatches) {  // queries[b - 1 : 2b - 1], as test_reference.py
      const int64_t b = std::min(want, kMaxBatch - (want - 1));
      const Result part = run(db, q.data() + (want - 1) * d, b, k, 1);
      const bool same = std::memcmp(part.scores.data(), one.scores.data() + (want - 1) * k,
                                    b * k * 4) == 0 &&
                        std::equal(part.ids.begin(), part.ids.end(), one.ids.begin() + (want - 1) * k);
      CHECK(same, "%s: a batch of %lld differs from the batch of %lld", what.c_str(),
            (long long)b, (long long)kMaxBatch);
    }
  }
}

// Enough rows for several threads and several row blocks per thread.
void check_many_rows(const std::string& isa, DType dtype) {
  const int64_t n = 6000, d = 77, k = 20;
  std::mt19937_64 rng(7);
  const Db db = make_db(normal(rng, n * d), n, d, dtype);
  const std::vector<float> q = normal(rng, kMaxBatch * d);
  const std::string what = isa + " " + dtype_name(dtype) + " n=6000 d=77";
  const Result ref = run(db, q.data(), kMaxBatch, k, 1);
  check_topk(ref, db, q.data(), kMaxBatch, k, what);
  for (int64_t threads : {2, 3, 8})
    CHECK(run(db, q.data(), kMaxBatch, k, threads) == ref, "%s: %lld threads differ from 1",
          what.c_str(), (long long)threads);
}

// Rows with NaN (fp32, fp16) or a NaN int8 scale never enter the results.
void check_nan_rows(const std::string& isa, DType dtype) {
  const int64_t n = 40, d = 24, k = n;
  std::mt19937_64 rng(11);
  Db db = make_db(normal(rng, n * d), n, d, dtype);
  for (int64_t row : {3, 17, 39}) {
    if (dtype == DType::fp32) db.f32[row * d + 5] = std::nanf("");
    if (dtype == DType::fp16) db.f16[row * d + 5] = 0x7e00;
    if (dtype == DType::int8) db.scales[row] = std::nanf("");
  }
  const std::vector<float> q = normal(rng, 2 * d);
  const Result r = run(db, q.data(), 2, k, 2);
  for (int64_t i = 0; i < 2 * k; ++i) {
    const bool bad = r.ids[i] == 3 || r.ids[i] == 17 || r.ids[i] == 39;
    CHECK(!bad, "%s %s: NaN row %lld returned", isa.c_str(), dtype_name(dtype),
          (long long)r.ids[i]);
  }
  CHECK(r.ids[k - 1] == -1 && r.ids[k - 3] == -1 && r.ids[k - 4] >= 0,
        "%s %s: expected 37 hits and 3 misses", isa.c_str(), dtype_name(dtype));
}

// Equal rows: equal scores, lower id first, across threads.
void check_ties(const std::string& isa, DType dtype) {
  const int64_t n = 300, d = 40;
  std::mt19937_64 rng(5);
  std::vector<float> one = normal(rng, d), x(n * d);
  for (int64_t r = 0; r < n; ++r) std::copy(one.begin(), one.end(), x.begin() + r * d);
  const Db db = make_db(x, n, d, dtype);
  const std::vector<float> q = normal(rng, d);
  for (int64_t threads : {1, 4}) {
    const Result r = run(db, q.data(), 1, 50, threads);
    for (int64_t j = 0; j < 50; ++j)
      CHECK(r.ids[j] == j && r.scores[j] == r.scores[0], "%s %s: tie order at %lld",
            isa.c_str(), dtype_name(dtype), (long long)j);
  }
}

// test_int8_screen.py: the screening ISA returns what its exact ISA returns, bit for bit,
// on inputs that stress the screen's bound (near ties, poorly quantized queries, extreme
// scales, long rows).
void check_screen_pair(const std::string& exact, const std::string& screen) {
  struct Case {
    const char* name;
    int64_t n, d, nq, k;
    int kind;
  };
  const Case cases[] = {{"random", 3000, 512, 7, 10, 0},   {"random d=1", 500, 1, 5, 7, 0},
                        {"random d=33", 2000, 33, 3, 25, 0}, {"near ties", 2000, 64, 4, 30, 1},
                        {"poor queries", 1500, 96, 5, 10, 2}, {"tiny scales", 1000, 48, 3, 10, 3},
                        {"huge scales", 1000, 48, 3, 10, 4},  {"long rows", 64, 4097, 2, 5, 0}};
  for (const Case& c : cases) {
    std::mt19937_64 rng(static_cast<uint64_t>(c.n * 31 + c.d + c.kind));
    std::vector<float> x = normal(rng, c.n * c.d);
    if (c.kind == 1)  // duplicates of a few rows, nudged by one int8 step
      for (int64_t r = 0; r < c.n; ++r)
        for (int64_t j = 0; j < c.d; ++j) x[r * c.d + j] = x[(r % 5) * c.d + j] * (1 + 1e-3f * (r % 3));
    Db db = make_db(x, c.n, c.d, DType::int8);
    if (c.kind == 3 || c.kind == 4)
      for (int64_t r = 0; r < c.n; ++r) db.scales[r] *= c.kind == 3 ? 1e-30f : 1e30f;
    std::vector<float> q = normal(rng, c.nq * c.d);
    if (c.kind == 2)  // one huge element per query: the rest quantize to almost nothing
      for (int64_t i = 0; i < c.nq; ++i) q[i * c.d] = 1e4f;
    Result got[2];
    for (int s = 0; s < 2; ++s) {
      cliprt::set_isa(s == 0 ? exact : screen);
      got[s] = run(db, q.data(), c.nq, c.k, 2);
    }
    CHECK(got[0] == got[1], "int8 %s: %s and %s differ", c.name, screen.c_str(), exact.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string expect;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect-isas") == 0 && i + 1 < argc) {
      expect = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--expect-isas a,b,c]\n", argv[0]);
      return 2;
    }
  }
  const std::vector<std::string> isas = cliprt::available_isas();
  std::string list;
  for (const auto& s : isas) list += (list.empty() ? "" : ",") + s;
  std::printf("ISAs: %s (active %s)\n", list.c_str(), cliprt::current_isa().c_str());
  if (!expect.empty() && expect != list) {
    std::fprintf(stderr, "FAIL: expected ISAs %s, this CPU offers %s\n", expect.c_str(),
                 list.c_str());
    return 1;
  }
  const int64_t shapes[][2] = {{1, 1},    {1, 512},  {15, 513}, {16, 33},  {17, 17},
                               {31, 511}, {32, 16},  {33, 1},   {33, 32},  {511, 15},
                               {512, 31}, {513, 513}};
  for (const auto& isa : isas) {
    cliprt::set_isa(isa);
    const int before = g_failures;
    for (DType dtype : {DType::fp32, DType::fp16, DType::int8}) {
      for (const auto& s : shapes) check_shape(isa, dtype, s[0], s[1]);
      check_many_rows(isa, dtype);
      check_nan_rows(isa, dtype);
      check_ties(isa, dtype);
    }
    std::printf("%-10s fp32/fp16/int8 vs float64, 1-8 threads: %s\n", isa.c_str(),
                g_failures == before ? "ok" : "FAILED");
  }
  const char* pairs[][2] = {{"neon", "neondot"}, {"avx512", "avx512vnni"}};
  for (const auto& p : pairs) {
    bool have = false;
    for (const auto& s : isas) have |= s == p[1];
    if (!have) continue;
    const int before = g_failures;
    check_screen_pair(p[0], p[1]);
    std::printf("%-10s int8 screen bit-equal to %s: %s\n", p[1], p[0],
                g_failures == before ? "ok" : "FAILED");
  }
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
