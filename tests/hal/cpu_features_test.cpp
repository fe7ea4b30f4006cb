// CPUID detection: the reported features are consistent with each other, best_isa() is
// always runnable, and SUPERNODE_ISA lowers (never raises) the chosen family.
#include <cstdlib>
#include <string>

#include "supernode/hal/cpu_features.h"

#include <CppUTest/TestHarness.h>

using sn::hal::Isa;

namespace {

// Sets SUPERNODE_ISA for one scope and restores the previous value.
class ScopedIsaEnv {
 public:
  explicit ScopedIsaEnv(const char* value) {
    if (const char* old = std::getenv("SUPERNODE_ISA")) old_ = old, had_ = true;
    setenv("SUPERNODE_ISA", value, 1);
  }
  ~ScopedIsaEnv() {
    if (had_) {
      setenv("SUPERNODE_ISA", old_.c_str(), 1);
    } else {
      unsetenv("SUPERNODE_ISA");
    }
  }

 private:
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_GROUP(CpuFeatures){};

TEST(CpuFeatures, FeaturesImplyTheirPrerequisites) {
  const sn::hal::CpuFeatures& f = sn::hal::cpu_features();
  CHECK_FALSE(f.vendor.empty());
  if (f.avx2) CHECK_TRUE(f.avx);
  if (f.fma) CHECK_TRUE(f.avx);
  if (f.f16c) CHECK_TRUE(f.avx);
  if (f.avx512bw || f.avx512vl || f.avx512dq || f.avx512vnni || f.avx512bf16) CHECK_TRUE(f.avx512f);
  if (f.avx512f) CHECK_TRUE(f.avx);
  if (sn::hal::isa_supported(Isa::kAvx512)) CHECK_TRUE(sn::hal::isa_supported(Isa::kAvx2));
  CHECK_TRUE(sn::hal::isa_supported(Isa::kScalar));
  // The build targets x86-64-v3, so a CPU running this test has AVX2 + FMA + F16C.
  CHECK_TRUE(sn::hal::isa_supported(Isa::kAvx2));
  CHECK(&f == &sn::hal::cpu_features());
}

TEST(CpuFeatures, IsaNames) {
  STRCMP_EQUAL("scalar", sn::hal::isa_name(Isa::kScalar));
  STRCMP_EQUAL("avx2", sn::hal::isa_name(Isa::kAvx2));
  STRCMP_EQUAL("avx512", sn::hal::isa_name(Isa::kAvx512));
}

TEST(CpuFeatures, BestIsaIsSupportedAndTheHighest) {
  ScopedIsaEnv env("");
  const Isa best = sn::hal::best_isa();
  CHECK_TRUE(sn::hal::isa_supported(best));
  if (sn::hal::isa_supported(Isa::kAvx512)) CHECK(best == Isa::kAvx512);
}

TEST(CpuFeatures, EnvironmentLowersTheIsa) {
  {
    ScopedIsaEnv env("scalar");
    CHECK(sn::hal::best_isa() == Isa::kScalar);
  }
  {
    ScopedIsaEnv env("avx2");
    CHECK(sn::hal::best_isa() == Isa::kAvx2);
  }
  {
    ScopedIsaEnv env("avx512");  // never more than the CPU has
    const Isa best = sn::hal::best_isa();
    CHECK_TRUE(sn::hal::isa_supported(best));
    CHECK(best == (sn::hal::isa_supported(Isa::kAvx512) ? Isa::kAvx512 : Isa::kAvx2));
  }
  {
    ScopedIsaEnv env("bogus");  // ignored
    CHECK_TRUE(sn::hal::isa_supported(sn::hal::best_isa()));
  }
}
