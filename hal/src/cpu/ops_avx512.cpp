// AVX-512 (F/BW/VL/DQ) kernels for CpuBackend's non-matmul ops (Isa::kAvx512), 16 lanes,
// tails through masked loads and stores. Compiled with the AVX-512 flags only; everything
// but the table getter is in an anonymous namespace and no std:: template is instantiated
// here, so no AVX-512 instruction can leak into a baseline path through ODR merging.
// Called through the table from backend.cpp after a CPUID check.
// Thread safety: pure functions; callers give each thread disjoint outputs.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the unused merge source, which
// -Wmaybe-uninitialized reports after inlining (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "ops_kernels.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// e^x: range reduction to r in [-ln2/2, ln2/2], degree-6 polynomial, scale by 2^n.
// Inputs are clamped to [-87.3, 88.3] so the result is a normal float (about 1 ulp).
SN_INLINE __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

SN_INLINE __m512 silu_mul_ps(__m512 g, __m512 u) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

SN_INLINE __m512 load_f16_masked(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

void rms_norm_row(const float* x, const float* w, int64_t dim, float eps, float* y) {
  __m512d acc0 = _mm512_setzero_pd();
  __m512d acc1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 sq = _mm512_mul_ps(v, v);
    acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
  }
  double sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
  for (; i < dim; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(dim));
  const float scale = 1.0f / __builtin_sqrtf(mean + eps);
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i < dim; i += 16) {
    const __mmask16 m = dim - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(dim - i);
    __m512 r = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
    if (w != nullptr) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(y + i, m, r);
  }
}

void rope_head(float* x, const float* cos, const float* sin, int64_t n_pairs, bool neox) {
  if (neox) {
    float* x1p = x + n_pairs;
    for (int64_t i = 0; i < n_pairs; i += 16) {
      const __mmask16 m = n_pairs - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n_pairs - i);
      const __m512 c = _mm512_maskz_loadu_ps(m, cos + i);
      const __m512 s = _mm512_maskz_loadu_ps(m, sin + i);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
      const __m512 x1 = _mm512_maskz_loadu_ps(m, x1p + i);
      const __m512 r0 = _mm512_fmsub_ps(x0, c, _mm512_mul_ps(x1, s));
      const __m512 r1 = _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c));
      _mm512_mask_storeu_ps(x + i, m, r0);
      _mm512_mask_storeu_ps(x1p + i, m, r1);
    }
    return;
  }
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  for (int64_t i = 0; i < n_pairs; i += 8) {
    const int64_t np = n_pairs - i >= 8 ? 8 : n_pairs - i;
    const __mmask8 mp = static_cast<__mmask8>((1u << np) - 1u);
    const __mmask16 m = tail_mask(2 * np);
    const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mp, cos + i)));
    const __m512 s = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(mp, sin + i)));
    const __m512 v = _mm512_maskz_loadu_ps(m, x + 2 * i);
    const __m512 swapped = _mm512_permute_ps(v, 0xB1);  // (x1, x0) per pair
    // even lanes: x0*c - x1*s; odd lanes: x1*c + x0*s
    _mm512_mask_storeu_ps(x + 2 * i, m, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, silu_mul_ps(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void add(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

void f32_to_f16(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tail_mask(n - i);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(dst + i, m, h);
  }
}

SN_INLINE __m512 round_f16(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// One key's update of an f16 accumulator: rescale when the running max grew (ms != 1),
// then add v * vs, rounding to f16 after each (llama.cpp's order).
SN_INLINE __m512 acc_step(__m512 acc, __m512 v, float ms, float vs) {
  if (ms != 1.0f) acc = round_f16(_mm512_mul_ps(acc, _mm512_set1_ps(ms)));
  return round_f16(_mm512_fmadd_ps(v, _mm512_set1_ps(vs), acc));
}

// The 16 horizontal sums of p[0..15] in one vector (lane j: the sum of p[j]), each added
// in exactly the order _mm512_reduce_add_ps adds (GCC's avx512fintrin.h: high half plus low
// half, then 128-bit halves, then lanes 0+2 and 1+3, then those two), so a score is bit for
// bit what reducing its own vector gives; the shuffles are shared by all 16.
SN_INLINE __m512 reduce16(const __m512* p) {
  __m512 z[8];
  for (int m = 0; m < 8; ++m) {  // lanes l + (l + 8) of keys 2m, 2m + 1
    z[m] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * m], p[2 * m + 1], 0xEE),
                         _mm512_shuffle_f32x4(p[2 * m], p[2 * m + 1], 0x44));
  }
  __m512 w[4];
  for (int m = 0; m < 4; ++m) {  // then l + (l + 4): 128-bit lane k holds key 4m + k
    w[m] = _mm512_add_ps(_mm512_shuffle_f32x4(z[2 * m], z[2 * m + 1], 0xDD),
                         _mm512_shuffle_f32x4(z[2 * m], z[2 * m + 1], 0x88));
  }
  // then 0 + 2 and 1 + 3: lane k of v0 holds keys k and 4 + k, of v1 keys 8 + k and 12 + k
  const __m512 v0 = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 v1 = _mm512_add_ps(_mm512_shuffle_ps(w[2], w[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(w[2], w[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // then the last two: element 4k + e holds key k + 4e
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);
}

// Lane j of the result is x[j - k], or fill[j] for j < k.
SN_INLINE __m512 shift_lanes_up(__m512 x, int k, __m512 fill) {
  const __m512i idx = _mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                       _mm512_set1_epi32(k));
  return _mm512_mask_permutexvar_ps(fill, static_cast<__mmask16>(0xFFFFu << k), idx, x);
}

// head_dim up to 16 * kMaxChunks.
constexpr int64_t kMaxChunks = 16;
// Keys scored together: their dot products and exponentials are vectorized; only the f16
// accumulator update, which llama.cpp's numerics make sequential, runs key by key.
constexpr int kKeyTile = 16;

// Key-by-key f16 accumulator updates of heads [h, h + N) for chunk c: N independent rounding
// chains in flight at once (each chain is latency-bound on its conversions).
// kRescale false: no key of the tile raised any of these heads' running max (every ms is 1,
// the common case once the max has settled), so no step needs the rescale or its test.
template <int N, bool kRescale>
SN_INLINE void acc_heads(float* acc_base, int64_t ld, int64_t h, int64_t c, int nk, const float (*vbuf)[kMaxChunks * 16],
                         const float (*ms)[kKeyTile], const float (*vs)[kKeyTile]) {
  __m512 acc[N];
#pragma GCC unroll 8
  for (int u = 0; u < N; ++u) acc[u] = _mm512_loadu_ps(acc_base + (h + u) * ld + 16 * c);
  for (int j = 0; j < nk; ++j) {
    const __m512 v = _mm512_load_ps(vbuf[j] + 16 * c);
    if constexpr (kRescale) {
#pragma GCC unroll 8
      for (int u = 0; u < N; ++u) acc[u] = acc_step(acc[u], v, ms[h + u][j], vs[h + u][j]);
    } else {
#pragma GCC unroll 8
      for (int u = 0; u < N; ++u) acc[u] = round_f16(_mm512_fmadd_ps(v, _mm512_set1_ps(vs[h + u][j]), acc[u]));
    }
  }
#pragma GCC unroll 8
  for (int u = 0; u < N; ++u) _mm512_storeu_ps(acc_base + (h + u) * ld + 16 * c, acc[u]);
}

// The 16 raw scores q.k of key tile rows kbuf[0..16), reduced as reduce16 does. NC > 0: the
// head's 16-float chunks, known at compile time, so q and all 16 partial sums stay in
// registers; NC == 0: `nc` at run time.
template <int NC>
SN_INLINE __m512 tile_scores(const float* qr, const float (*kbuf)[kMaxChunks * 16], int64_t nc_rt) {
  const int64_t nc = NC > 0 ? NC : nc_rt;
  __m512 p[kKeyTile];
  if constexpr (NC > 0) {
    __m512 qv[NC];
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(qr + 16 * c);
#pragma GCC unroll 16
    for (int j = 0; j < kKeyTile; ++j) {
      __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 16
      for (int c = 0; c < NC; ++c) a = _mm512_fmadd_ps(qv[c], _mm512_load_ps(kbuf[j] + 16 * c), a);
      p[j] = a;
    }
  } else {
    for (int j = 0; j < kKeyTile; ++j) {
      __m512 a = _mm512_setzero_ps();
      for (int64_t c = 0; c < nc; ++c) a = _mm512_fmadd_ps(_mm512_loadu_ps(qr + 16 * c), _mm512_load_ps(kbuf[j] + 16 * c), a);
      p[j] = a;
    }
  }
  return reduce16(p);
}

// A run of consecutive tokens of one sequence: each key tile is loaded and converted once,
// then every token takes the same per-key steps it would take in a run of its own.
template <int NC>
void attention_run_nc(const AttentionRunArgs& r) {
  const int64_t d = r.head_dim;
  const int64_t nc = NC > 0 ? NC : (d + 15) / 16;
  const int64_t ld = nc * 16;
  const int64_t n_q = r.n_q;
  const __mmask16 full = static_cast<__mmask16>(0xFFFF);
  const __mmask16 last = d % 16 != 0 ? tail_mask(d % 16) : full;
  float m[kMaxAttentionRun][kMaxAttentionGroup];
  float sum[kMaxAttentionRun][kMaxAttentionGroup];
  // Queries rounded to f16 once (llama.cpp converts Q to f16), zero-padded to whole chunks.
  for (int64_t i = 0; i < r.n_tok; ++i) {
    for (int64_t h = 0; h < n_q; ++h) {
      m[i][h] = -__builtin_inff();
      sum[i][h] = 0.0f;
      const float* q = r.q + i * r.q_stride + h * d;
      float* qr = r.q_scratch + (i * n_q + h) * ld;
      for (int64_t c = 0; c < nc; ++c) {
        _mm512_storeu_ps(r.acc + (i * n_q + h) * ld + 16 * c, _mm512_setzero_ps());
        _mm512_storeu_ps(qr + 16 * c, round_f16(_mm512_maskz_loadu_ps(c == nc - 1 ? last : full, q + 16 * c)));
      }
    }
  }
  alignas(64) float kbuf[kKeyTile][kMaxChunks * 16];
  alignas(64) float vbuf[kKeyTile][kMaxChunks * 16];
  alignas(64) float mcur[kKeyTile];
  alignas(64) float ms[kMaxAttentionGroup][kKeyTile];
  alignas(64) float vs[kMaxAttentionGroup][kKeyTile];
  const int64_t bs = r.block_size;
  const int64_t n_pos_max = r.first_n_pos + r.n_tok - 1;
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j0 = 0; j0 < n_pos_max; j0 += kKeyTile) {
    const int nk_all = n_pos_max - j0 < kKeyTile ? static_cast<int>(n_pos_max - j0) : kKeyTile;
    for (int j = 0; j < nk_all; ++j) {
      const int64_t pos = j0 + j;
      const int64_t slot = static_cast<int64_t>(r.block_table[pos / bs]) * bs + pos % bs;
      const uint16_t* k = r.k + slot * r.kv_stride + r.kv_offset;
      const uint16_t* v = r.v + slot * r.kv_stride + r.kv_offset;
      for (int64_t c = 0; c < nc; ++c) {
        const __mmask16 mk = c == nc - 1 ? last : full;
        _mm512_store_ps(kbuf[j] + 16 * c, load_f16_masked(k + 16 * c, mk));
        _mm512_store_ps(vbuf[j] + 16 * c, load_f16_masked(v + 16 * c, mk));
      }
    }
    // Rows past the last key are scored too (every tile takes 16), then masked off.
    for (int j = nk_all; j < kKeyTile; ++j) {
      for (int64_t c = 0; c < nc; ++c) _mm512_store_ps(kbuf[j] + 16 * c, _mm512_setzero_ps());
    }
    for (int64_t i = 0; i < r.n_tok; ++i) {
      const int64_t n_pos = r.first_n_pos + i;
      if (n_pos <= j0) continue;
      const int nk = n_pos - j0 < kKeyTile ? static_cast<int>(n_pos - j0) : kKeyTile;
      const __mmask16 km = nk == kKeyTile ? full : tail_mask(nk);
      float* acc_base = r.acc + i * n_q * ld;
      __mmask16 rescale = 0;  // keys at which some head's running max rose
      for (int64_t h = 0; h < n_q; ++h) {
        const __m512 sv =
            _mm512_mul_ps(tile_scores<NC>(r.q_scratch + (i * n_q + h) * ld, kbuf, nc), _mm512_set1_ps(r.scale));
        // The running max after each key (a prefix max: exact in any order), the max before
        // each key, and the rescale and weight of each key's step.
        const __m512 m_old = _mm512_set1_ps(m[i][h]);
        __m512 x = _mm512_mask_blend_ps(km, neg_inf, sv);
        x = _mm512_max_ps(x, shift_lanes_up(x, 1, neg_inf));
        x = _mm512_max_ps(x, shift_lanes_up(x, 2, neg_inf));
        x = _mm512_max_ps(x, shift_lanes_up(x, 4, neg_inf));
        x = _mm512_max_ps(x, shift_lanes_up(x, 8, neg_inf));
        const __m512 mx = _mm512_max_ps(x, m_old);
        const __m512 mc = _mm512_maskz_mov_ps(km, mx);
        const __m512 mp = _mm512_maskz_mov_ps(km, shift_lanes_up(mx, 1, m_old));
        // Where the max did not rise, exp(mp - mc) = exp(0) = 1 exactly: skip the exp.
        __m512 msv = one;
        if (_mm512_mask_cmp_ps_mask(km, mp, mc, _CMP_NEQ_UQ) != 0) {
          const __mmask16 first = _mm512_cmp_ps_mask(mp, neg_inf, _CMP_EQ_OQ);
          msv = _mm512_maskz_mov_ps(static_cast<__mmask16>(~first), exp_ps(_mm512_sub_ps(mp, mc)));
          rescale |= _mm512_mask_cmp_ps_mask(km, msv, one, _CMP_NEQ_UQ);
        }
        _mm512_store_ps(ms[h], msv);
        _mm512_store_ps(vs[h], exp_ps(_mm512_sub_ps(_mm512_maskz_mov_ps(km, sv), mc)));
        _mm512_store_ps(mcur, mc);
        m[i][h] = mcur[nk - 1];
      }
      // The denominators, key by key in order; the heads' chains are independent.
      for (int j = 0; j < nk; ++j) {
        for (int64_t h = 0; h < n_q; ++h) sum[i][h] = sum[i][h] * ms[h][j] + vs[h][j];
      }
      for (int64_t c = 0; c < nc; ++c) {
        int64_t h = 0;
        if (rescale != 0) {
          for (; h + 8 <= n_q; h += 8) acc_heads<8, true>(acc_base, ld, h, c, nk, vbuf, ms, vs);
          for (; h + 4 <= n_q; h += 4) acc_heads<4, true>(acc_base, ld, h, c, nk, vbuf, ms, vs);
          for (; h < n_q; ++h) acc_heads<1, true>(acc_base, ld, h, c, nk, vbuf, ms, vs);
        } else {
          for (; h + 8 <= n_q; h += 8) acc_heads<8, false>(acc_base, ld, h, c, nk, vbuf, ms, vs);
          for (; h + 4 <= n_q; h += 4) acc_heads<4, false>(acc_base, ld, h, c, nk, vbuf, ms, vs);
          for (; h < n_q; ++h) acc_heads<1, false>(acc_base, ld, h, c, nk, vbuf, ms, vs);
        }
      }
    }
  }
  for (int64_t i = 0; i < r.n_tok; ++i) {
    for (int64_t h = 0; h < n_q; ++h) {
      const __m512 inv = _mm512_set1_ps(sum[i][h] > 0.0f ? 1.0f / sum[i][h] : 0.0f);
      for (int64_t c = 0; c < nc; ++c) {
        const __mmask16 mk = c == nc - 1 ? last : full;
        _mm512_mask_storeu_ps(r.out + i * r.out_stride + h * d + 16 * c, mk,
                              _mm512_mul_ps(_mm512_loadu_ps(r.acc + (i * n_q + h) * ld + 16 * c), inv));
      }
    }
  }
}

// Head sizes 64 and 128 (nearly every model) get the chunk count at compile time.
void attention_run(const AttentionRunArgs& r) {
  if (r.head_dim == 64) return attention_run_nc<4>(r);
  if (r.head_dim == 128) return attention_run_nc<8>(r);
  attention_run_nc<0>(r);
}

#undef SN_INLINE

}  // namespace

const OpsKernels& ops_kernels_avx512() {
  static constexpr OpsKernels kTable = {rms_norm_row, rope_head, silu_mul, add, f32_to_f16, attention_run};
  return kTable;
}

}  // namespace sn::hal::cpu
