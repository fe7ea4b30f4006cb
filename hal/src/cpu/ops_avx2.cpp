// AVX2 + FMA + F16C kernels for CpuBackend's non-matmul ops (Isa::kAvx2), 8 lanes.
// Compiled with the AVX2 flags only; everything but the table getter is in an anonymous
// namespace and no std:: template is instantiated here, so none of this code can be
// ODR-merged into a baseline path. Called through the table from backend.cpp.
// Thread safety: pure functions; callers give each thread disjoint outputs.
#include <immintrin.h>

#include <cstdint>

#include "ops_kernels.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE float hsum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

SN_INLINE double hsum_pd(__m256d v) {
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

// e^x: range reduction to r in [-ln2/2, ln2/2], degree-6 polynomial, scale by 2^n.
// Inputs are clamped to [-87.3, 88.3] so the result is a normal float (about 1 ulp).
SN_INLINE __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

SN_INLINE __m256 silu_mul_ps(__m256 g, __m256 u) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

SN_INLINE __m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Loads n < 8 halves, zero-filling the rest.
SN_INLINE __m256 load_f16_partial(const uint16_t* p, int64_t n) {
  alignas(16) uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
}

// Loads n < 8 floats, zero-filling the rest.
SN_INLINE __m256 load_partial(const float* p, int64_t n) {
  alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return _mm256_load_ps(buf);
}

SN_INLINE void store_partial(float* p, __m256 v, int64_t n) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

void rms_norm_row(const float* x, const float* w, int64_t dim, float eps, float* y) {
  __m256d acc0 = _mm256_setzero_pd();
  __m256d acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(v, v);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double sum = hsum_pd(_mm256_add_pd(acc0, acc1));
  for (; i < dim; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(dim));
  const float scale = 1.0f / __builtin_sqrtf(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  i = 0;
  if (w != nullptr) {
    for (; i + 8 <= dim; i += 8) {
      _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    }
    for (; i < dim; ++i) y[i] = (x[i] * scale) * w[i];
  } else {
    for (; i + 8 <= dim; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < dim; ++i) y[i] = x[i] * scale;
  }
}

void rope_head(float* x, const float* cos, const float* sin, int64_t n_pairs, bool neox) {
  int64_t i = 0;
  if (neox) {
    float* x1p = x + n_pairs;
    for (; i + 8 <= n_pairs; i += 8) {
      const __m256 c = _mm256_loadu_ps(cos + i);
      const __m256 s = _mm256_loadu_ps(sin + i);
      const __m256 x0 = _mm256_loadu_ps(x + i);
      const __m256 x1 = _mm256_loadu_ps(x1p + i);
      _mm256_storeu_ps(x + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
      _mm256_storeu_ps(x1p + i, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
    }
    for (; i < n_pairs; ++i) {
      const float x0 = x[i], x1 = x1p[i];
      x[i] = x0 * cos[i] - x1 * sin[i];
      x1p[i] = x0 * sin[i] + x1 * cos[i];
    }
    return;
  }
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (; i + 4 <= n_pairs; i += 4) {
    const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cos + i)), dup);
    const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sin + i)), dup);
    const __m256 v = _mm256_loadu_ps(x + 2 * i);
    const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (x1, x0) per pair
    // even lanes: x0*c - x1*s; odd lanes: x1*c + x0*s
    _mm256_storeu_ps(x + 2 * i, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
  }
  for (; i < n_pairs; ++i) {
    const float x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = x0 * cos[i] - x1 * sin[i];
    x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul_ps(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  // The tail goes through the same vector formula, so an element's value never depends on
  // where it falls in the call.
  if (i < n) store_partial(out + i, silu_mul_ps(load_partial(gate + i, n - i), load_partial(up + i, n - i)), n - i);
}

void add(const float* a, const float* b, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

void f32_to_f16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  if (i < n) {
    alignas(16) uint16_t buf[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(buf),
                    _mm256_cvtps_ph(load_partial(src + i, n - i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (int64_t j = 0; i + j < n; ++j) dst[i + j] = buf[j];
  }
}

SN_INLINE __m256 round_f16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// head_dim up to 8 * kMaxChunks.
constexpr int64_t kMaxChunks = 64;

void attention_group(const AttentionGroupArgs& a) {
  const int64_t d = a.head_dim;
  const int64_t nc = (d + 7) / 8;
  const int64_t ld = (d + 15) / 16 * 16;
  const int64_t tail = d % 8;
  float m[kMaxAttentionGroup];
  float sum[kMaxAttentionGroup];
  for (int64_t h = 0; h < a.n_q; ++h) {
    m[h] = -__builtin_inff();
    sum[h] = 0.0f;
    for (int64_t c = 0; c < nc; ++c) _mm256_storeu_ps(a.acc + h * ld + 8 * c, _mm256_setzero_ps());
  }
  // Lanes past head_dim hold zeros in kf/vf/q loads, so they stay zero in acc.
  __m256 kf[kMaxChunks];
  __m256 vf[kMaxChunks];
  const int64_t bs = a.block_size;
  for (int64_t j0 = 0; j0 < a.n_pos; j0 += bs) {
    const int64_t base = static_cast<int64_t>(a.block_table[j0 / bs]) * bs;
    const int64_t n = a.n_pos - j0 < bs ? a.n_pos - j0 : bs;
    for (int64_t s = 0; s < n; ++s) {
      const uint16_t* k = a.k + (base + s) * a.kv_stride + a.kv_offset;
      const uint16_t* v = a.v + (base + s) * a.kv_stride + a.kv_offset;
      for (int64_t c = 0; c < nc; ++c) {
        const bool part = c == nc - 1 && tail != 0;
        kf[c] = part ? load_f16_partial(k + 8 * c, tail) : load_f16(k + 8 * c);
        vf[c] = part ? load_f16_partial(v + 8 * c, tail) : load_f16(v + 8 * c);
      }
      for (int64_t h = 0; h < a.n_q; ++h) {
        const float* q = a.q + h * d;
        float* acc = a.acc + h * ld;
        __m256 p = _mm256_setzero_ps();
        for (int64_t c = 0; c < nc; ++c) {
          const bool part = c == nc - 1 && tail != 0;
          p = _mm256_fmadd_ps(round_f16(part ? load_partial(q + 8 * c, tail) : _mm256_loadu_ps(q + 8 * c)), kf[c], p);
        }
        const float score = hsum(p) * a.scale;
        float vs = 1.0f;
        float ms = 1.0f;
        if (score > m[h]) {
          ms = __builtin_expf(m[h] - score);
          m[h] = score;
          const __m256 vms = _mm256_set1_ps(ms);
          for (int64_t c = 0; c < nc; ++c) {
            _mm256_storeu_ps(acc + 8 * c, round_f16(_mm256_mul_ps(_mm256_loadu_ps(acc + 8 * c), vms)));
          }
        } else {
          vs = __builtin_expf(score - m[h]);
        }
        const __m256 vvs = _mm256_set1_ps(vs);
        for (int64_t c = 0; c < nc; ++c) {
          _mm256_storeu_ps(acc + 8 * c, round_f16(_mm256_fmadd_ps(vf[c], vvs, _mm256_loadu_ps(acc + 8 * c))));
        }
        sum[h] = sum[h] * ms + vs;
      }
    }
  }
  for (int64_t h = 0; h < a.n_q; ++h) {
    const float inv = sum[h] > 0.0f ? 1.0f / sum[h] : 0.0f;
    for (int64_t i = 0; i < d; ++i) a.out[h * d + i] = a.acc[h * ld + i] * inv;
  }
}

#undef SN_INLINE

void attention_run(const AttentionRunArgs& r) { attention_run_by_token(attention_group, r); }

}  // namespace

const OpsKernels& ops_kernels_avx2() {
  static constexpr OpsKernels kTable = {rms_norm_row, rope_head, silu_mul, add, f32_to_f16, attention_run};
  return kTable;
}

}  // namespace sn::hal::cpu
