// Helpers of the CUDA backend's host code: device properties and error translation.
// Thread safety: may be called from any thread.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "supernode/base/status.h"
#include "supernode/hal/gpu.h"

namespace sn::hal::cuda {

// "cudaErrorNoDevice: no CUDA-capable device is detected".
[[nodiscard]] std::string error_text(cudaError_t e);

// Why cudaGetDeviceCount found no device: "no CUDA driver is loaded (...)" when the
// driver library is absent, else the error's text.
[[nodiscard]] std::string no_device_reason(cudaError_t e);

// Name, compute capability, SMs, memory, L2, shared memory, memory bus; usable when the
// compute capability is 8.0 or more. Copy bandwidths are left 0. Makes `device` current.
[[nodiscard]] Result<GpuProps> query_device(int device);

// Copies `bytes` bytes device to device `repeats` times (after one warm-up) on a fresh
// stream; the best copy's bytes read plus written per second, in GB/s.
[[nodiscard]] Result<double> measure_d2d_gbs(int64_t bytes, int repeats);
// Pinned host memory to the device and back, best of `repeats`, GB/s each way.
[[nodiscard]] Status measure_host_copy_gbs(int64_t bytes, int repeats, double* h2d, double* d2h);

}  // namespace sn::hal::cuda
