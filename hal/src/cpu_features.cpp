// CPU feature detection: CPUID leaves 0, 1, 7 and 0x80000002..4 plus XGETBV, so a feature
// counts only when the OS also saves its register state (YMM for AVX, ZMM/opmask for
// AVX-512). Called by CpuBackend (to check its ISA), by `supernode hw` and by the engine
// when it picks the kernel family at start-up.
// Thread safety: cpu_features() fills a function-local static once (thread-safe init);
// everything else is pure.
#include "supernode/hal/cpu_features.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sn::hal {
namespace {

struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(' ');
  return s.substr(first, last - first + 1);
}

CpuFeatures detect() {
  CpuFeatures f;
  const Regs l0 = cpuid(0);
  const uint32_t max_leaf = l0.eax;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &l0.ebx, 4);
  std::memcpy(vendor + 4, &l0.edx, 4);
  std::memcpy(vendor + 8, &l0.ecx, 4);
  f.vendor = vendor;

  const uint32_t max_ext = cpuid(0x80000000u).eax;
  if (max_ext >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + i * 16 + 0, &r.eax, 4);
      std::memcpy(brand + i * 16 + 4, &r.ebx, 4);
      std::memcpy(brand + i * 16 + 8, &r.ecx, 4);
      std::memcpy(brand + i * 16 + 12, &r.edx, 4);
    }
    f.brand = trim(brand);
  }
  if (max_leaf < 1) return f;

  const Regs l1 = cpuid(1);
  f.sse42 = bit(l1.ecx, 20);
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  // XMM (bit 1) and YMM (bit 2) state; AVX-512 also needs opmask, ZMM_Hi256, Hi16_ZMM (5..7).
  const bool os_ymm = (xcr0 & 0x6u) == 0x6u;
  const bool os_zmm = os_ymm && (xcr0 & 0xE0u) == 0xE0u;

  f.avx = os_ymm && bit(l1.ecx, 28);
  f.fma = f.avx && bit(l1.ecx, 12);
  f.f16c = f.avx && bit(l1.ecx, 29);
  if (max_leaf < 7) return f;

  const Regs l7 = cpuid(7, 0);
  f.avx2 = f.avx && bit(l7.ebx, 5);
  f.avx512f = os_zmm && bit(l7.ebx, 16);
  f.avx512dq = f.avx512f && bit(l7.ebx, 17);
  f.avx512bw = f.avx512f && bit(l7.ebx, 30);
  f.avx512vl = f.avx512f && bit(l7.ebx, 31);
  f.avx512vnni = f.avx512f && bit(l7.ecx, 11);
  if (l7.eax >= 1) {
    const Regs l71 = cpuid(7, 1);
    f.avx_vnni = f.avx2 && bit(l71.eax, 4);
    f.avx512bf16 = f.avx512f && bit(l71.eax, 5);
  }
  return f;
}

// The best family the hardware allows, ignoring SUPERNODE_ISA.
Isa hardware_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return avx2;
    // BF16 is not required: kernels that want it check avx512bf16 themselves.
    case Isa::kAvx512:
      return avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
  }
  return false;
}

Isa best_isa() {
  const Isa hw = hardware_isa();
  const char* env = std::getenv("SUPERNODE_ISA");
  if (env == nullptr || *env == '\0') return hw;
  const std::string_view want(env);
  Isa requested = hw;
  if (want == "scalar") {
    requested = Isa::kScalar;
  } else if (want == "avx2") {
    requested = Isa::kAvx2;
  } else if (want == "avx512") {
    requested = Isa::kAvx512;
  }
  // The override only lowers: asking for more than the CPU has yields the CPU's best.
  return static_cast<unsigned char>(requested) < static_cast<unsigned char>(hw) ? requested : hw;
}

}  // namespace sn::hal
