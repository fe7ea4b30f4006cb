// ggml's quantized block layouts, the scalar dequantizers of every computable weight type,
// the quantizers of matmul activations (Q8_0, Q8_1, Q8_K, F16, BF16) and the scalar dot
// products that define the reference numerics of CpuBackend::matmul.
//
// Layouts follow ggml byte for byte (GGUF files are read in place). Activations are
// quantized as llama.cpp's CPU backend does, so our logits track its reference outputs.
// Every ISA variant of the matmul kernels quantizes activations with these same functions,
// so integer block sums are identical across ISAs; only float accumulation order differs.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "supernode/hal/dtype.h"

namespace sn::hal::cpu {

inline constexpr int kQK = 32;    // elements of a 32-block (q4_0 .. q8_1)
inline constexpr int kQKK = 256;  // elements of a K super-block

struct BlockQ4_0 {
  uint16_t d;          // f16 scale
  uint8_t qs[kQK / 2];  // element j in low nibble of qs[j], element j+16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d, m;  // f16 scale and min: x = d * q + m
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j (little-endian u32) = fifth bit of element j
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 pairs of 6-bit (scale, min), packed
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// The 6-bit (scale, min) pair j (0..7) of a q4_K / q5_K block.
inline void k_scale_min(const uint8_t* q, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Dequantizes n elements (a multiple of the block size) of a row of `type` to f32.
// REQUIRES: dtype_info(type).computable.
// The unsigned 6-bit value (0..63) of element e (0..255) of a q6_K block (scale group e / 16).
int q6k_value(const BlockQ6_K& b, int e);

void dequantize_row(DType type, const void* src, float* dst, int64_t n);

// The activation type a weight type's dot product takes.
enum class DotType { kF32, kF16, kBF16, kQ8_0, kQ8_1, kQ8_K };
[[nodiscard]] DotType dot_type(DType weight);

// Quantized activations of one token, in our own (private) layout: separate arrays so the
// kernels load aligned vectors. Pointers into the matmul scratch.
//   kQ8_0/kQ8_1: qs[n] int8, d[n/32] (the f16-rounded block scale, as f32),
//                s[n/32] (Q8_1: f16-rounded d * sum(qs)), nls[n/4] (-(sum of each 4 qs)),
//                off8[n/32] and off128[n/32] (-8 and -128 times the block's sum of qs: the
//                offset corrections of the packed q4_0 and q8_0 kernels).
//   kQ8_K:       qs[n] int8, d[n/256] f32, bsums[n/16] (sum of each 16 qs),
//                bsums32[n/32] (int16 sum of each 32 qs), off32[n/16] (int32, -32 times each
//                16-sum: the packed q6_K kernel's offset correction).
//   kF16/kBF16:  h[n] halves.  kF32: f (the caller's x).
struct ActRow {
  const int8_t* qs = nullptr;
  const float* d = nullptr;
  const float* s = nullptr;
  const int32_t* nls = nullptr;
  const int16_t* bsums = nullptr;
  const int32_t* off8 = nullptr;
  const int32_t* off128 = nullptr;
  const int16_t* bsums32 = nullptr;
  const int32_t* off32 = nullptr;
  const uint16_t* h = nullptr;
  const float* f = nullptr;
};

// Where each array of ActRow lies inside one token's record of `token_bytes` bytes
// (a multiple of 64; each array starts 64-byte aligned).
struct ActLayout {
  DotType type = DotType::kF32;
  int64_t token_bytes = 0;
  int64_t qs = 0, d = 0, s = 0, nls = 0, bsums = 0, h = 0;
  int64_t off8 = 0, off128 = 0, bsums32 = 0, off32 = 0;
};
[[nodiscard]] ActLayout act_layout(DotType type, int64_t n);

// Quantizes one token x[n] into its record at `rec` (64-byte aligned). Not for kF32.
// The scalar reference; values are rounded to nearest, ties to even.
void quantize_act(const ActLayout& layout, const float* x, int64_t n, uint8_t* rec);

// The same, vectorized with AVX2 (quant_avx2.cpp): bit-identical records.
// REQUIRES: the CPU has AVX2 (every CPU of our baseline does).
void quantize_act_avx2(const ActLayout& layout, const float* x, int64_t n, uint8_t* rec);

// The view of a token's record (for kF32 `rec` is the token's f32 row).
[[nodiscard]] ActRow act_row(const ActLayout& layout, const uint8_t* rec);

// The scalar reference dot product of one weight row (n elements of `type`) with one
// token's activations: the numerics every ISA variant approximates within float rounding.
[[nodiscard]] float vec_dot_ref(DType type, const void* w, const ActRow& a, int64_t n);

}  // namespace sn::hal::cpu
