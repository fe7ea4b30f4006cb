// rope: one thread per (token, rotated pair) computes the pair's angle exactly as the CPU
// backend's rope cache does (theta starts at the position and is multiplied by
// theta_scale once per pair, in float; IEEE division by the frequency factor), then
// rotates that pair in every head of the token. Normal mode rotates (2i, 2i+1), NeoX
// (i, i + n_dims/2). Called by CudaBackend::rope.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

__global__ void rope_kernel(RopeArgs a) {
  const int64_t n_pairs = a.n_dims / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= a.n_tokens * n_pairs) return;
  const int64_t t = idx / n_pairs, i = idx % n_pairs;
  float theta = static_cast<float>(a.positions[t]);
  for (int64_t k = 0; k < i; ++k) theta = __fmul_rn(theta, a.theta_scale);
  const float ff = a.freq_factors != nullptr ? a.freq_factors[i] : 1.0f;
  const float angle = __fmul_rn(a.freq_scale, __fdiv_rn(theta, ff));
  float s, c;
  sincosf(angle, &s, &c);
  float* xt = a.x + t * a.n_heads * a.head_dim;
  for (int64_t h = 0; h < a.n_heads; ++h) {
    float* p0 = xt + h * a.head_dim + (a.neox ? i : 2 * i);
    float* p1 = a.neox ? p0 + n_pairs : p0 + 1;
    const float x0 = *p0, x1 = *p1;
    *p0 = x0 * c - x1 * s;
    *p1 = x0 * s + x1 * c;
  }
}

}  // namespace

cudaError_t launch_rope(const RopeArgs& a, cudaStream_t stream) {
  const int64_t n = a.n_tokens * (a.n_dims / 2);
  if (n == 0) return cudaSuccess;
  rope_kernel<<<grid_for(n, 128), 128, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
