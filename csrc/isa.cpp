// Run-time ISA choice: what the CPU supports, the best by default, CLIPRT_ISA to force
// one (tests and benchmarks), set_isa for the test suite.
#if defined(_MSC_VER) && !defined(__clang__)
#include <immintrin.h>
#include <intrin.h>
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "isa.hpp"
#include "kernel.hpp"

namespace cliprt {
namespace {

struct Isa {
  const char* name;
  ScoreBlockFn fn;
  bool (*supported)();
  bool uses_quant = false;
};

bool always() { return true; }

#if defined(__x86_64__) || defined(_M_X64)
#if defined(_MSC_VER) && !defined(__clang__)
// cpuid bits, and XCR0 for the OS saving the wider registers.
bool cpuid_bit(int leaf, int sub, int reg, int bit) {
  int r[4];
  __cpuidex(r, leaf, sub);
  return (r[reg] >> bit) & 1;
}
bool os_saves(unsigned long long mask) {
  return cpuid_bit(1, 0, 2, 27) && (_xgetbv(0) & mask) == mask;  // OSXSAVE, then XCR0
}
bool has_avx2() {
  return os_saves(0x6) && cpuid_bit(7, 0, 1, 5) && cpuid_bit(1, 0, 2, 12) &&
         cpuid_bit(1, 0, 2, 29);  // AVX2, FMA, F16C
}
bool has_avx512() {
  return has_avx2() && os_saves(0xe6) && cpuid_bit(7, 0, 1, 16) && cpuid_bit(7, 0, 1, 30) &&
         cpuid_bit(7, 0, 1, 31);  // AVX512F, BW, VL
}
bool has_avx512vnni() { return has_avx512() && cpuid_bit(7, 0, 2, 11); }  // AVX512_VNNI
#else
// __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool has_avx512vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }
#endif
#endif

#if defined(__aarch64__)
bool has_neondot() {
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
  return false;  // no portable query here: stay on neon
#endif
}
#endif

// Worst first; the last supported one is the default.
const Isa kIsas[] = {
    {"baseline", score_block_baseline, always},
#if defined(__x86_64__) || defined(_M_X64)
    {"avx2", score_block_avx2, has_avx2},
    {"avx512", score_block_avx512, has_avx512},
    // AVX-512 plus VNNI: the same fp32 and fp16 scores as avx512, int8 rows screened by
    // vpdpbusd and the survivors scored exactly (the same int8 scores as avx512).
    {"avx512vnni", score_block_avx512vnni, has_avx512vnni, true},
#endif
#if defined(__aarch64__)
    {"neon", score_block_neon, always},
    // NEON plus sdot: the same scores as neon; int8 rows screened by sdot, survivors
    // scored exactly (as avx512vnni does on x86).
    {"neondot", score_block_neondot, has_neondot, true},
#endif
};

std::string names_of(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

const Isa* find_supported(const std::string& name, const char* origin) {
  for (const Isa& isa : kIsas) {
    if (name != isa.name) continue;
    if (!isa.supported())
      throw std::invalid_argument(std::string(origin) + "'" + name +
                                  "' is not supported by this CPU; available: " +
                                  names_of(available_isas()) + ".");
    return &isa;
  }
  throw std::invalid_argument(std::string(origin) + "unknown ISA '" + name +
                              "'; available on this CPU: " + names_of(available_isas()) + ".");
}

const Isa* initial() {
  const char* env = std::getenv("CLIPRT_ISA");
  if (env && *env) return find_supported(env, "CLIPRT_ISA: ");
  const Isa* best = &kIsas[0];
  for (const Isa& isa : kIsas)
    if (isa.supported()) best = &isa;
  return best;
}

std::atomic<const Isa*>& active() {
  static std::atomic<const Isa*> isa{initial()};
  return isa;
}

}  // namespace

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const Isa& isa : kIsas)
    if (isa.supported()) out.emplace_back(isa.name);
  return out;
}

std::string current_isa() { return active().load()->name; }

void set_isa(const std::string& name) { active().store(find_supported(name, "")); }

ActiveKernel active_kernel() {
  const Isa* isa = active().load();
  return {isa->fn, isa->uses_quant};
}

}  // namespace cliprt
