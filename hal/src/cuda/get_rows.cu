// get_rows: the embedding lookup. One thread per output element dequantizes it from the
// device layout with the CPU dequantizer's exact arithmetic (every product rounded on its
// own: __fmul_rn keeps nvcc from fusing it into an FMA, except q4_K's d1 * q - m1, which
// GCC fuses on the CPU), so results match cpu::dequantize_row bit for bit. Called by CudaBackend::get_rows.
// Thread safety: see kernels.h.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda {
namespace {

__device__ int scale_byte(const uint8_t* scales, int i) { return scales[i]; }

__device__ void k_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scale_byte(q, j) & 63;
    *m = scale_byte(q, j + 4) & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

__device__ float dequant(const DevWeight& w, int64_t r, int64_t c) {
  const uint8_t* p0 = w.plane[0] + r * w.pitch[0];
  switch (w.type) {
    case DType::kF32: return reinterpret_cast<const float*>(p0)[c];
    case DType::kF16: return load_f16(p0 + 2 * c);
    case DType::kQ4_0: {
      const int64_t b = c / 32, j = c % 32;
      const float d = load_f16(w.plane[1] + r * w.pitch[1] + 2 * b);
      const uint8_t q = p0[b * 16 + j % 16];
      return __fmul_rn(d, static_cast<float>((j < 16 ? (q & 0xF) : (q >> 4)) - 8));
    }
    case DType::kQ8_0: {
      const int64_t b = c / 32;
      const float d = load_f16(w.plane[1] + r * w.pitch[1] + 2 * b);
      return __fmul_rn(d, static_cast<float>(reinterpret_cast<const int8_t*>(p0)[c]));
    }
    case DType::kQ4_K: {
      const int64_t b = c / 256;
      const int e = static_cast<int>(c % 256), j = e / 32, l = e % 32;
      const uint8_t* meta = w.plane[1] + r * w.pitch[1] + 16 * b;
      const float d = load_f16(meta), dmin = load_f16(meta + 2);
      int sc, m;
      k_scale_min(meta + 4, j, &sc, &m);
      const uint8_t byte = p0[b * 128 + (j / 2) * 32 + l];
      const int v = (j & 1) ? (byte >> 4) : (byte & 0xF);
      // d1 * q - m1 as one FMA: what GCC makes of the CPU dequantizer (it contracts by default).
      return __fmaf_rn(__fmul_rn(d, static_cast<float>(sc)), static_cast<float>(v),
                       -__fmul_rn(dmin, static_cast<float>(m)));
    }
    case DType::kQ6_K: {
      const int64_t b = c / 256;
      const int e = static_cast<int>(c % 256);
      const int half = e / 128, rr = e % 128, quarter = rr / 32, l = rr % 32;
      const uint8_t* ql = p0 + b * 128 + 64 * half;
      const uint8_t* qh = w.plane[1] + r * w.pitch[1] + b * 64 + 32 * half;
      const int lo = (quarter & 1) ? ql[l + 32] : ql[l];
      const int nib = (quarter & 2) ? (lo >> 4) : (lo & 0xF);
      const int v = nib | (((qh[l] >> (2 * quarter)) & 3) << 4);
      const int8_t sc = reinterpret_cast<const int8_t*>(w.plane[2] + r * w.pitch[2] + b * 16)[e / 16];
      const float d = load_f16(w.plane[3] + r * w.pitch[3] + 2 * b);
      return __fmul_rn(__fmul_rn(d, static_cast<float>(sc)), static_cast<float>(v - 32));
    }
    default: return 0.0f;
  }
}

__global__ void get_rows_kernel(DevWeight w, const int32_t* ids, int64_t n, float* out) {
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int64_t i = blockIdx.x;
  if (c >= w.cols || i >= n) return;
  out[i * w.cols + c] = dequant(w, ids[i], c);
}

}  // namespace

cudaError_t launch_get_rows(const DevWeight& w, const int32_t* ids, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t col_blocks = grid_for(w.cols, 256);
  if (col_blocks > 65535 || n > 0x7FFFFFFF) return cudaErrorInvalidValue;  // rows of > 16M elements
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(col_blocks));
  get_rows_kernel<<<grid, 256, 0, stream>>>(w, ids, n, out);
  return cudaGetLastError();
}

}  // namespace sn::hal::cuda
