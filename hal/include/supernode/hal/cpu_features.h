// What the CPU can do, read from CPUID (and XGETBV for the OS-enabled register state).
// Kernels are chosen from this at run time; the build never assumes the build machine's ISA.
//
// Thread safety: cpu_features() computes once and is safe from any thread.
#pragma once

#include <string>

namespace sn::hal {

struct CpuFeatures {
  std::string vendor;  // "AuthenticInt", "AuthenticAMD", ...
  std::string brand;   // the processor brand string, trimmed
  bool sse42 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx_vnni = false;
};

[[nodiscard]] const CpuFeatures& cpu_features();

// Kernel families, in increasing order of what they require.
//   kScalar: plain C++ (the reference every other variant is tested against).
//   kAvx2:   AVX2 + FMA + F16C.
//   kAvx512: AVX-512 F/BW/VL/DQ + VNNI (and BF16 where the kernel uses it).
enum class Isa : unsigned char { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

[[nodiscard]] const char* isa_name(Isa isa);
// True when this CPU can run kernels of `isa`.
[[nodiscard]] bool isa_supported(Isa isa);
// The best family this CPU supports. The environment variable SUPERNODE_ISA
// ("scalar", "avx2", "avx512") lowers it, for debugging and comparisons.
[[nodiscard]] Isa best_isa();

}  // namespace sn::hal
