// rms_norm: one 256-thread block per row; the sum of squares is accumulated in double
// (each square rounded to float first, as the CPU reference does) and reduced in a fixed
// order, so a row's result never depends on the other rows. Called by CudaBackend::rms_norm.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* x, const float* w, int64_t dim, float eps, float* y) {
  __shared__ double partial[kThreads / 32];
  __shared__ float row_scale;
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sum += static_cast<double>(__fmul_rn(xr[i], xr[i]));
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int i = 0; i < kThreads / 32; ++i) total += partial[i];
    const float mean = static_cast<float>(total / static_cast<double>(dim));
    row_scale = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, eps)));
  }
  __syncthreads();
  const float scale = row_scale;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const float v = __fmul_rn(xr[i], scale);
    yr[i] = w != nullptr ? __fmul_rn(v, w[i]) : v;
  }
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y,
                            cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(x, weight, dim, eps, y);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
