// add: out = a + b, elementwise. Called by CudaBackend::add.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i];
  }
}

}  // namespace

cudaError_t launch_add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<std::min(grid_for(n, 256), 65536), 256, 0, stream>>>(a, b, n, out);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
