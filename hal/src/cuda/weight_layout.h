// The device layout of a weight (CudaBackend::upload_weight) and of the quantized
// activations the GEMV reads: plain C++ so host code and kernels share one definition.
//
// A weight is split into up to four planes, each [rows][pitch] bytes with pitch a
// multiple of 16, so that every row of every plane starts 16-byte aligned and a warp reads
// a row with coalesced 128-bit loads (GGUF's 18-, 34- and 210-byte blocks are not aligned).
// Padding bytes are zero. Per type:
//   f32, f16   plane 0: the values (row padded with zeros to 16 bytes)
//   q4_0       plane 0: qs (16 bytes per 32-block, GGUF nibble order); plane 1: d (f16)
//   q8_0       plane 0: qs (32 bytes per block);                      plane 1: d (f16)
//   q4_K       plane 0: qs (128 bytes per 256-block); plane 1: d, dmin, scales[12] (16 bytes)
//   q6_K       plane 0: ql (128 bytes); plane 1: qh (64); plane 2: scales (16 int8); plane 3: d (f16)
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "supernode/hal/dtype.h"

namespace sn::hal::cuda {

inline constexpr int kMaxPlanes = 4;

struct WeightLayout {
  DType type = DType::kF32;
  int64_t rows = 0, cols = 0;
  int n_planes = 0;
  int64_t offset[kMaxPlanes] = {};  // bytes from the start of the allocation (256-aligned)
  int64_t pitch[kMaxPlanes] = {};   // bytes per row, a multiple of 16
  int64_t bytes = 0;                // the whole allocation
};

// constexpr: also callable from device code (--expt-relaxed-constexpr).
constexpr int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// REQUIRES: type is one the CUDA backend supports and cols a multiple of its block size.
inline WeightLayout weight_layout(DType type, int64_t rows, int64_t cols) {
  WeightLayout l;
  l.type = type;
  l.rows = rows;
  l.cols = cols;
  int64_t row_bytes[kMaxPlanes] = {};
  switch (type) {
    case DType::kF32: l.n_planes = 1, row_bytes[0] = cols * 4; break;
    case DType::kF16: l.n_planes = 1, row_bytes[0] = cols * 2; break;
    case DType::kQ4_0: l.n_planes = 2, row_bytes[0] = cols / 2, row_bytes[1] = cols / 32 * 2; break;
    case DType::kQ8_0: l.n_planes = 2, row_bytes[0] = cols, row_bytes[1] = cols / 32 * 2; break;
    case DType::kQ4_K: l.n_planes = 2, row_bytes[0] = cols / 2, row_bytes[1] = cols / 256 * 16; break;
    case DType::kQ6_K:
      l.n_planes = 4;
      row_bytes[0] = cols / 2, row_bytes[1] = cols / 4, row_bytes[2] = cols / 16, row_bytes[3] = cols / 256 * 2;
      break;
    default: break;
  }
  int64_t off = 0;
  for (int p = 0; p < l.n_planes; ++p) {
    l.offset[p] = off;
    l.pitch[p] = round_up(row_bytes[p], 16);
    off = round_up(off + l.pitch[p] * rows, 256);
  }
  l.bytes = off;
  return l;
}

// Quantized activations of up to n_tokens tokens of n elements, one record per token
// (written by quantize_act, read by the GEMV's prologue), in device memory:
//   kQ8_0: qs int8[n], d f32[n/32] (f16-rounded block scale), s i32[n/32] (sum of qs)
//   kQ8_K: qs int8[n], d f32[n/256], s i32[n/16] (sum of each 16 qs)
//   kF16:  h f16[n] (in the qs array's place, 2n bytes)
// Values are those of cpu::quantize_act, bit for bit.
enum class ActKind { kF32, kF16, kQ8_0, kQ8_K };

struct ActLayout {
  ActKind kind = ActKind::kF32;
  int64_t n = 0;
  int64_t qs_pitch = 0, d_pitch = 0, s_pitch = 0;  // bytes per token of each array
  int64_t qs_offset = 0, d_offset = 0, s_offset = 0;
  int64_t token_stride = 0;                        // bytes per token record
};

inline ActLayout act_layout(ActKind kind, int64_t n) {
  ActLayout a;
  a.kind = kind;
  a.n = n;
  switch (kind) {
    case ActKind::kF32: break;
    case ActKind::kF16: a.qs_pitch = round_up(n * 2, 16); break;
    case ActKind::kQ8_0:
      a.qs_pitch = round_up(n, 16), a.d_pitch = round_up(n / 32 * 4, 16), a.s_pitch = round_up(n / 32 * 4, 16);
      break;
    case ActKind::kQ8_K:
      a.qs_pitch = round_up(n, 16), a.d_pitch = round_up(n / 256 * 4, 16), a.s_pitch = round_up(n / 16 * 4, 16);
      break;
  }
  a.qs_offset = 0;
  a.d_offset = a.qs_pitch;
  a.s_offset = a.d_offset + a.d_pitch;
  a.token_stride = round_up(a.s_offset + a.s_pitch, 256);
  return a;
}

inline ActKind act_kind(DType weight) {
  switch (weight) {
    case DType::kF16: return ActKind::kF16;
    case DType::kQ4_0:
    case DType::kQ8_0: return ActKind::kQ8_0;
    case DType::kQ4_K:
    case DType::kQ6_K: return ActKind::kQ8_K;
    default: return ActKind::kF32;
  }
}

}  // namespace sn::hal::cuda
