// Repacks a weight from its GGUF layout into the device layout of weight_layout.h: one
// thread per (row, block); f32/f16 are copied element by element into padded rows.
// Called by CudaBackend::upload_weight on a temporary copy of the GGUF bytes.
// Thread safety: see kernels.h.
#include <cstring>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

struct RepackArgs {
  DType type;
  int64_t rows, cols, n_blocks;  // n_blocks: GGUF blocks (or elements) per row
  const uint8_t* src;
  int64_t row_bytes;
  uint8_t* plane[kMaxPlanes];
  int64_t pitch[kMaxPlanes];
};

__device__ void copy_bytes(uint8_t* dst, const uint8_t* src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}

__global__ void repack_kernel(RepackArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.rows * a.n_blocks) return;
  const int64_t r = i / a.n_blocks, b = i % a.n_blocks;
  const uint8_t* s = a.src + r * a.row_bytes;
  uint8_t* p0 = a.plane[0] + r * a.pitch[0];
  switch (a.type) {
    case DType::kF32: copy_bytes(p0 + b * 4, s + b * 4, 4); break;
    case DType::kF16: copy_bytes(p0 + b * 2, s + b * 2, 2); break;
    case DType::kQ4_0:  // d[2] qs[16]
      copy_bytes(a.plane[1] + r * a.pitch[1] + b * 2, s + b * 18, 2);
      copy_bytes(p0 + b * 16, s + b * 18 + 2, 16);
      break;
    case DType::kQ8_0:  // d[2] qs[32]
      copy_bytes(a.plane[1] + r * a.pitch[1] + b * 2, s + b * 34, 2);
      copy_bytes(p0 + b * 32, s + b * 34 + 2, 32);
      break;
    case DType::kQ4_K:  // d dmin scales[12] qs[128]
      copy_bytes(a.plane[1] + r * a.pitch[1] + b * 16, s + b * 144, 16);
      copy_bytes(p0 + b * 128, s + b * 144 + 16, 128);
      break;
    case DType::kQ6_K:  // ql[128] qh[64] scales[16] d[2]
      copy_bytes(p0 + b * 128, s + b * 210, 128);
      copy_bytes(a.plane[1] + r * a.pitch[1] + b * 64, s + b * 210 + 128, 64);
      copy_bytes(a.plane[2] + r * a.pitch[2] + b * 16, s + b * 210 + 192, 16);
      copy_bytes(a.plane[3] + r * a.pitch[3] + b * 2, s + b * 210 + 208, 2);
      break;
    default: break;
  }
}

}  // namespace

cudaError_t launch_repack(const WeightLayout& l, const uint8_t* src, int64_t row_bytes, uint8_t* dst,
                          cudaStream_t stream) {
  RepackArgs a{};
  a.type = l.type;
  a.rows = l.rows;
  a.cols = l.cols;
  const int64_t block_elems = (l.type == DType::kF32 || l.type == DType::kF16) ? 1
                              : (l.type == DType::kQ4_0 || l.type == DType::kQ8_0) ? 32 : 256;
  a.n_blocks = l.cols / block_elems;
  a.src = src;
  a.row_bytes = row_bytes;
  for (int p = 0; p < l.n_planes; ++p) {
    a.plane[p] = dst + l.offset[p];
    a.pitch[p] = l.pitch[p];
  }
  const int64_t n = a.rows * a.n_blocks;
  if (n == 0) return cudaSuccess;
  repack_kernel<<<grid_for(n, 256), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
