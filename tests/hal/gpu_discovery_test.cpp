// discover_gpus() and describe_gpus(): on any machine (with or without a driver, with or
// without the CUDA backend built) discovery returns either GPUs with sane properties or a
// "no NVIDIA GPU (reason)" explanation, and never fails the process.
#include <cstdio>
#include <string>

#include "supernode/hal/cuda_backend.h"
#include "supernode/hal/gpu.h"

#include <CppUTest/TestHarness.h>

TEST_GROUP(GpuDiscovery){};

TEST(GpuDiscovery, ReportsGpusOrAReason) {
  const sn::hal::GpuReport r = sn::hal::discover_gpus();
  if (r.gpus.empty()) {
    CHECK_TRUE_TEXT(r.reason.rfind("no NVIDIA GPU (", 0) == 0, r.reason.c_str());
  }
  for (const sn::hal::GpuProps& g : r.gpus) {
    CHECK_TRUE(!g.name.empty() || !g.note.empty());
    if (g.usable) {
      CHECK_TRUE(g.cc_major >= 8);
      CHECK_TRUE(g.sm_count > 0);
      CHECK_TRUE(g.memory_total > 0);
      CHECK_TRUE(r.cuda_built);
    }
  }
  const std::string text = sn::hal::describe_gpus(r);
  CHECK_TRUE(text.rfind("gpu: ", 0) == 0);
  std::fprintf(stderr, "%s", text.c_str());
}

TEST(GpuDiscovery, BackendCreationAgreesWithDiscovery) {
  const sn::hal::GpuReport r = sn::hal::discover_gpus();
  bool any_usable = false;
  for (const sn::hal::GpuProps& g : r.gpus) any_usable = any_usable || g.usable;
  sn::Result<std::unique_ptr<sn::hal::CudaBackend>> be = sn::hal::CudaBackend::create(0);
  if (!any_usable) {
    CHECK_FALSE(be.ok());
    CHECK_TRUE(be.status().code() == sn::Status::Code::kNotSupported);
  }
}
