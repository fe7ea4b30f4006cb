// The scalar reference kernels for CpuBackend's non-matmul ops (Isa::kScalar): plain C++,
// one sequential reduction order, written to mirror llama.cpp's reference arithmetic.
// Every SIMD family is tested against these. Called through the table from backend.cpp.
// Thread safety: pure functions; callers give each thread disjoint outputs.
#include <cmath>

#include "ops_kernels.h"
#include "supernode/hal/fp16.h"

namespace sn::hal::cpu {
namespace {

void rms_norm_row(const float* x, const float* w, int64_t dim, float eps, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(dim));
  const float scale = 1.0f / std::sqrt(mean + eps);
  if (w != nullptr) {
    for (int64_t i = 0; i < dim; ++i) y[i] = (x[i] * scale) * w[i];
  } else {
    for (int64_t i = 0; i < dim; ++i) y[i] = x[i] * scale;
  }
}

void rope_head(float* x, const float* cos, const float* sin, int64_t n_pairs, bool neox) {
  for (int64_t i = 0; i < n_pairs; ++i) {
    const float c = cos[i];
    const float s = sin[i];
    float* a = neox ? x + i : x + 2 * i;
    float* b = neox ? x + i + n_pairs : x + 2 * i + 1;
    const float x0 = *a;
    const float x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void f32_to_f16(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

float round_f16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

void attention_group(const AttentionGroupArgs& a) {
  const int64_t d = a.head_dim;
  const int64_t ld = (d + 15) / 16 * 16;
  float m[kMaxAttentionGroup];
  float sum[kMaxAttentionGroup];
  for (int64_t h = 0; h < a.n_q; ++h) {
    m[h] = -INFINITY;
    sum[h] = 0.0f;
    for (int64_t i = 0; i < d; ++i) a.acc[h * ld + i] = 0.0f;
  }
  for (int64_t j = 0; j < a.n_pos; ++j) {
    const int64_t slot = static_cast<int64_t>(a.block_table[j / a.block_size]) * a.block_size + j % a.block_size;
    const uint16_t* k = a.k + slot * a.kv_stride + a.kv_offset;
    const uint16_t* v = a.v + slot * a.kv_stride + a.kv_offset;
    for (int64_t h = 0; h < a.n_q; ++h) {
      const float* q = a.q + h * d;
      float* acc = a.acc + h * ld;
      float dot = 0.0f;
      for (int64_t i = 0; i < d; ++i) dot += round_f16(q[i]) * fp16_to_fp32(k[i]);
      const float s = dot * a.scale;
      float ms = 1.0f;
      float vs = 1.0f;
      if (s > m[h]) {
        ms = std::exp(m[h] - s);
        m[h] = s;
        for (int64_t i = 0; i < d; ++i) acc[i] = round_f16(acc[i] * ms);
      } else {
        vs = std::exp(s - m[h]);
      }
      for (int64_t i = 0; i < d; ++i) acc[i] = round_f16(std::fma(fp16_to_fp32(v[i]), vs, acc[i]));
      sum[h] = sum[h] * ms + vs;
    }
  }
  for (int64_t h = 0; h < a.n_q; ++h) {
    const float inv = sum[h] > 0.0f ? 1.0f / sum[h] : 0.0f;
    for (int64_t i = 0; i < d; ++i) a.out[h * d + i] = a.acc[h * ld + i] * inv;
  }
}

void attention_run(const AttentionRunArgs& r) { attention_run_by_token(attention_group, r); }

}  // namespace

const OpsKernels& ops_kernels_scalar() {
  static constexpr OpsKernels kTable = {rms_norm_row, rope_head, silu_mul, add, f32_to_f16, attention_run};
  return kTable;
}

}  // namespace sn::hal::cpu
