// The CUDA side of GPU discovery, between gpu_discovery.cpp (always built) and
// cuda/device.cpp (built with CUDA) or cuda_off.cpp (without).
// Thread safety: may be called from any thread.
#pragma once

#include <string>
#include <vector>

#include "supernode/hal/gpu.h"

namespace sn::hal::detail {

struct CudaProbe {
  bool built = false;            // this binary has the CUDA backend
  int driver_version = 0;        // cudaDriverGetVersion, 0 without a driver
  std::vector<GpuProps> gpus;    // CUDA's devices, in ordinal order
  std::vector<std::string> uuids;  // "GPU-..." per device, to match NVML's
  std::string error;             // why there are none ("CUDA driver not found ...")
};

[[nodiscard]] CudaProbe probe_cuda(const GpuDiscoveryOptions& options);

}  // namespace sn::hal::detail
