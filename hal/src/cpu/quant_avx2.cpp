// The activation quantizers of quant.h vectorized with AVX2: the same records, bit for
// bit, as the scalar quantize_act (same operations per element: |x| max, one IEEE divide
// per block, x * (1/d) rounded to nearest even, exact integer side sums). Called by
// CpuBackend::matmul for every SIMD kernel family.
//
// Everything but the exported entry point is in an anonymous namespace and no std::
// template is instantiated, so no AVX2 code can be merged into a baseline path.
// Thread safety: pure function.
#include <immintrin.h>

#include "cpu/quant.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

SN_INLINE int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

SN_INLINE float round_f16(float f) { return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

SN_INLINE __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// 32 floats -> 32 int8 in order, rounded to nearest even after scaling; lanes of the result
// hold q[4i..4i+3] sums in *s4 (int32 x 8).
SN_INLINE __m256i quantize32(const float* x, __m256 scale, __m256i* s4) {
  __m256i v[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), scale),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v[k] = _mm256_cvtps_epi32(r);
  }
  const __m256i p01 = _mm256_packs_epi32(v[0], v[1]);
  const __m256i p23 = _mm256_packs_epi32(v[2], v[3]);
  const __m256i p = _mm256_packs_epi16(p01, p23);
  const __m256i q = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
  *s4 = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  return q;
}

void quantize_q8_0(const ActLayout& l, const float* x, int64_t n, uint8_t* rec) {
  auto* qs = reinterpret_cast<int8_t*>(rec + l.qs);
  auto* d = reinterpret_cast<float*>(rec + l.d);
  auto* s = reinterpret_cast<float*>(rec + l.s);
  auto* nls = reinterpret_cast<int32_t*>(rec + l.nls);
  auto* off8 = reinterpret_cast<int32_t*>(rec + l.off8);
  auto* off128 = reinterpret_cast<int32_t*>(rec + l.off128);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    __m256 m = abs_ps(_mm256_loadu_ps(xb));
    for (int k = 1; k < 4; ++k) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + 8 * k)));
    const float amax = hmax(m);
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    __m256i s4;
    const __m256i q = quantize32(xb, _mm256_set1_ps(id), &s4);
    _mm256_store_si256(reinterpret_cast<__m256i*>(qs + b * kQK), q);
    _mm256_store_si256(reinterpret_cast<__m256i*>(nls + b * 8), _mm256_sub_epi32(_mm256_setzero_si256(), s4));
    const int32_t sum = hsum_i32(s4);
    d[b] = round_f16(db);
    s[b] = round_f16(static_cast<float>(sum) * db);
    off8[b] = -8 * sum;
    off128[b] = -128 * sum;
  }
}

void quantize_q8_k(const ActLayout& l, const float* x, int64_t n, uint8_t* rec) {
  auto* qs = reinterpret_cast<int8_t*>(rec + l.qs);
  auto* d = reinterpret_cast<float*>(rec + l.d);
  auto* bsums = reinterpret_cast<int16_t*>(rec + l.bsums);
  auto* bsums32 = reinterpret_cast<int16_t*>(rec + l.bsums32);
  auto* off32 = reinterpret_cast<int32_t*>(rec + l.off32);
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const float* xb = x + b * kQKK;
    int8_t* q = qs + b * kQKK;
    __m256 m = abs_ps(_mm256_loadu_ps(xb));
    for (int k = 1; k < kQKK / 8; ++k) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(xb + 8 * k)));
    const float amax = hmax(m);
    if (amax == 0.0f) {
      d[b] = 0.0f;
      for (int k = 0; k < kQKK / 32; ++k) _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * k), _mm256_setzero_si256());
      for (int g = 0; g < 16; ++g) bsums[b * 16 + g] = 0, off32[b * 16 + g] = 0;
      for (int g = 0; g < 8; ++g) bsums32[b * 8 + g] = 0;
      continue;
    }
    // The signed value of the first element with the largest magnitude (as the scalar scan).
    float max = 0.0f;
    const __m256 am = _mm256_set1_ps(amax);
    for (int k = 0; k < kQKK / 8; ++k) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(xb + 8 * k)), am, _CMP_EQ_OQ));
      if (hit != 0) {
        max = xb[8 * k + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 sc = _mm256_set1_ps(iscale);
    for (int k = 0; k < kQKK / 32; ++k) {
      __m256i s4;
      // The scalar code clamps at 127 only; |iscale * x| <= 127 up to rounding, and the
      // saturating packs clamp the same way.
      const __m256i v = quantize32(xb + 32 * k, sc, &s4);
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 32 * k), v);
      // s4 lanes: sums of 4; 16-sums are lanes (0..3) and (4..7).
      const __m128i lo = _mm256_castsi256_si128(s4), hi = _mm256_extracti128_si256(s4, 1);
      const __m128i h = _mm_hadd_epi32(lo, hi);  // [l0+l1, l2+l3, h0+h1, h2+h3]
      const __m128i s16 = _mm_hadd_epi32(h, h);  // [lo sum, hi sum, ...]
      const int32_t a = _mm_cvtsi128_si32(s16), c = _mm_extract_epi32(s16, 1);
      bsums[b * 16 + 2 * k] = static_cast<int16_t>(a);
      bsums[b * 16 + 2 * k + 1] = static_cast<int16_t>(c);
      off32[b * 16 + 2 * k] = -32 * a;
      off32[b * 16 + 2 * k + 1] = -32 * c;
      bsums32[b * 8 + k] = static_cast<int16_t>(a + c);
    }
    d[b] = 1.0f / iscale;
  }
}

}  // namespace

void quantize_act_avx2(const ActLayout& l, const float* x, int64_t n, uint8_t* rec) {
  switch (l.type) {
    case DotType::kQ8_0:
    case DotType::kQ8_1: return quantize_q8_0(l, x, n, rec);
    case DotType::kQ8_K: return quantize_q8_k(l, x, n, rec);
    default: return quantize_act(l, x, n, rec);
  }
}

}  // namespace sn::hal::cpu
