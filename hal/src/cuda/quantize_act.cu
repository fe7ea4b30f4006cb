// Quantizes matmul activations on the device into the records of weight_layout.h's
// ActLayout, reproducing cpu::quantize_act bit for bit: IEEE division (no fast math),
// round-to-nearest-even conversions, and the same choice of the Q8_K scale's sign (the
// first element of largest magnitude). One warp per 32-block (Q8_0) or 256-block (Q8_K).
// Called by CudaBackend::matmul before the GEMV.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

__global__ void quantize_q8_0_kernel(const float* x, int64_t n, int64_t n_tokens, uint8_t* dst, int64_t stride,
                                     int64_t d_off, int64_t s_off) {
  pdl_wait();  // x may be the previous kernel's output, dst the previous GEMV's input
  pdl_launch_dependents();
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t nb = n / 32;
  if (warp >= n_tokens * nb) return;  // whole warps exit together
  const int64_t t = warp / nb, b = warp % nb;
  const float v = x[t * n + b * 32 + lane];
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float db = __fdiv_rn(amax, 127.0f);
  const float id = db != 0.0f ? __fdiv_rn(1.0f, db) : 0.0f;
  const int q = __float2int_rn(__fmul_rn(v, id));
  const int sum = warp_sum(q);
  uint8_t* rec = dst + t * stride;
  reinterpret_cast<int8_t*>(rec)[b * 32 + lane] = static_cast<int8_t>(q);
  if (lane == 0) {
    reinterpret_cast<float*>(rec + d_off)[b] = __half2float(__float2half_rn(db));
    reinterpret_cast<int32_t*>(rec + s_off)[b] = sum;
  }
}

__global__ void quantize_q8_k_kernel(const float* x, int64_t n, int64_t n_tokens, uint8_t* dst, int64_t stride,
                                     int64_t d_off, int64_t s_off) {
  pdl_wait();  // x may be the previous kernel's output, dst the previous GEMV's input
  pdl_launch_dependents();
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t nb = n / 256;
  if (warp >= n_tokens * nb) return;
  const int64_t t = warp / nb, b = warp % nb;
  const float* xb = x + t * n + b * 256 + lane * 8;
  float v[8];
  float amax = 0.0f;
  int idx = 1 << 30;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    v[j] = xb[j];
    if (fabsf(v[j]) > amax) amax = fabsf(v[j]), idx = lane * 8 + j;
  }
  // Largest magnitude, earliest index on ties: the element the CPU's strict '>' scan keeps.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float oa = __shfl_xor_sync(0xffffffffu, amax, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (oa > amax || (oa == amax && oi < idx)) amax = oa, idx = oi;
  }
  uint8_t* rec = dst + t * stride;
  int8_t* q = reinterpret_cast<int8_t*>(rec) + b * 256 + lane * 8;
  int32_t* bsums = reinterpret_cast<int32_t*>(rec + s_off) + b * 16;
  if (amax == 0.0f) {
#pragma unroll
    for (int j = 0; j < 8; ++j) q[j] = 0;
    if (lane < 16) bsums[lane] = 0;
    if (lane == 0) reinterpret_cast<float*>(rec + d_off)[b] = 0.0f;
    return;
  }
  const float max = x[t * n + b * 256 + idx];
  const float iscale = __fdiv_rn(-127.0f, max);
  int sum = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int qv = min(__float2int_rn(__fmul_rn(iscale, v[j])), 127);
    q[j] = static_cast<int8_t>(qv);
    sum += qv;
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);  // lanes 2g and 2g+1 hold the 16-group g
  if (lane % 2 == 0) bsums[lane / 2] = sum;
  if (lane == 0) reinterpret_cast<float*>(rec + d_off)[b] = __fdiv_rn(1.0f, iscale);
}

__global__ void quantize_f16_kernel(const float* x, int64_t n, int64_t n_tokens, uint8_t* dst, int64_t stride) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * n_tokens) return;
  const int64_t t = i / n, c = i % n;
  reinterpret_cast<__half*>(dst + t * stride)[c] = __float2half_rn(x[i]);
}

}  // namespace

cudaError_t launch_quantize_act(const ActLayout& a, const float* x, int64_t n_tokens, uint8_t* dst, bool pdl,
                                cudaStream_t stream) {
  constexpr int kBlock = 256;
  switch (a.kind) {
    case ActKind::kF32: return cudaSuccess;
    case ActKind::kF16:
      return launch_kernel(quantize_f16_kernel, grid_for(a.n * n_tokens, kBlock), kBlock, 0, stream, pdl, x, a.n,
                           n_tokens, dst, a.token_stride);
    case ActKind::kQ8_0:
      return launch_kernel(quantize_q8_0_kernel, grid_for(a.n / 32 * n_tokens * 32, kBlock), kBlock, 0, stream, pdl, x,
                           a.n, n_tokens, dst, a.token_stride, a.d_offset, a.s_offset);
    case ActKind::kQ8_K:
      return launch_kernel(quantize_q8_k_kernel, grid_for(a.n / 256 * n_tokens * 32, kBlock), kBlock, 0, stream, pdl, x,
                           a.n, n_tokens, dst, a.token_stride, a.d_offset, a.s_offset);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sn::hal::cuda
