// Host-side launchers of the CUDA backend's kernels, one .cu file each (hal/src/cuda/).
// Called by backend.cpp; every launcher enqueues on the given stream and returns at once,
// never allocates, synchronizes or logs. All pointers are device pointers. Launch errors
// are returned as cudaError_t (the caller checks them).
// Thread safety: any thread may launch on a stream it owns.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/weight_layout.h"
#include "supernode/hal/dtype.h"

namespace sn::hal::cuda {

// A repacked weight as kernels see it (see weight_layout.h).
struct DevWeight {
  DType type;
  int64_t rows, cols;
  const uint8_t* plane[kMaxPlanes];
  int64_t pitch[kMaxPlanes];
};

inline DevWeight dev_weight(const WeightLayout& l, const void* base) {
  DevWeight w{};
  w.type = l.type;
  w.rows = l.rows;
  w.cols = l.cols;
  for (int p = 0; p < l.n_planes; ++p) {
    w.plane[p] = static_cast<const uint8_t*>(base) + l.offset[p];
    w.pitch[p] = l.pitch[p];
  }
  return w;
}

// Quantized activations (see ActLayout): token t's arrays at base + t * token_stride.
struct DevAct {
  ActKind kind;
  int64_t n;
  const uint8_t* base;  // the f32 input itself for kF32 (token stride n * 4)
  int64_t token_stride, qs_offset, d_offset, s_offset;
};

// Repacks `rows` GGUF rows at src (row_bytes apart) into the zero-filled layout at dst.
cudaError_t launch_repack(const WeightLayout& l, const uint8_t* src, int64_t row_bytes, uint8_t* dst,
                          cudaStream_t stream);

// Quantizes n_tokens rows of x [n_tokens][n] into the records at dst (layout a). With
// `pdl` the kernel may start while the previous kernel of the stream finishes (it waits
// before touching memory) and lets the GEMV after it start early.
cudaError_t launch_quantize_act(const ActLayout& a, const float* x, int64_t n_tokens, uint8_t* dst, bool pdl,
                                cudaStream_t stream);

// The GEMV over at most kMaxGemvTokens tokens: y[t * y_stride + r] = W[r] . act_t.
inline constexpr int kMaxGemvTokens = 8;
struct GemvArgs {
  DevWeight w;
  DevAct act;
  int n_tokens;  // 1..kMaxGemvTokens
  float* y;
  int64_t y_stride;
  int sm_count;
  bool pdl;  // launch with programmatic dependent launch (compute capability 9.0+)
};
// Shared memory one token's activations take in a GEMV block (the layouts of gemv.cuh):
//   f32: cols padded to 16 bytes; f16: the same in halves;
//   q4_0, q8_0 (Q8_0 activations): 16 + 16 bytes of qs, f32 d, i32 sum per 32-block;
//   q4_K, q6_K (Q8_K activations): 16 + 16 bytes of qs and 2 x i32 sums per 32-element
//   unit, f32 d per 256-block.
inline int64_t gemv_token_smem_bytes(DType type, int64_t cols) {
  switch (type) {
    case DType::kF32: return round_up(cols * 4, 16);
    case DType::kF16: return round_up(cols * 2, 16);
    case DType::kQ4_0:
    case DType::kQ8_0: return round_up(cols / 32 * 40, 16);
    case DType::kQ4_K:
    case DType::kQ6_K: return round_up(cols / 32 * 40 + cols / 256 * 4, 16);
    default: return 0;
  }
}
cudaError_t launch_gemv_f32(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_gemv_f16(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_gemv_q4_0(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_gemv_q8_0(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_gemv_q4_k(const GemvArgs& a, cudaStream_t stream);
cudaError_t launch_gemv_q6_k(const GemvArgs& a, cudaStream_t stream);

// out[i][c] = dequantized W[ids[i]][c].
cudaError_t launch_get_rows(const DevWeight& w, const int32_t* ids, int64_t n, float* out, cudaStream_t stream);

cudaError_t launch_rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y,
                            cudaStream_t stream);

struct RopeArgs {
  float* x;
  int64_t n_tokens, n_heads, head_dim;
  const int32_t* positions;
  int32_t n_dims;
  float theta_scale;  // freq_base^(-2/n_dims), computed on the host as the CPU does
  float freq_scale;
  bool neox;
  const float* freq_factors;  // nullable
};
cudaError_t launch_rope(const RopeArgs& a, cudaStream_t stream);

cudaError_t launch_silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);
cudaError_t launch_add(const float* a, const float* b, int64_t n, float* out, cudaStream_t stream);

}  // namespace sn::hal::cuda
