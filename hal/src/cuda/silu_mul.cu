// silu_mul: out = gate / (1 + exp(-gate)) * up, elementwise. Called by CudaBackend::silu_mul.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
  }
}

}  // namespace

cudaError_t launch_silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  silu_mul_kernel<<<std::min(grid_for(n, 256), 65536), 256, 0, stream>>>(gate, up, n, out);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
