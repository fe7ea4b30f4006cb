// AVX-512 (F/BW/VL/DQ + VNNI) matmul kernels (Isa::kAvx512): 16 float lanes per output.
//
// Each kernel is a tile of NR weight rows x NT tokens: a weight block is unpacked once into
// registers and reused for NT tokens, an activation block is loaded once for NR rows. The
// tile shape only decides which outputs are computed together: every (row, token) output
// runs the same instruction sequence into its own 16-lane accumulator, in block order, and
// is reduced by one fixed tree (hsum), so GEMV (NT = 1) and GEMM give bit-identical
// results (batch invariance). Integer block sums are exact; only the float accumulation
// order differs from the scalar reference.
//
// 32-blocks: weights become unsigned bytes u (nibbles, 5-bit values, or q8 + 128) and
// vpdpbusd sums u * a into int32 lanes of 4 elements each, starting from -offset * (sum of
// the lane's 4 activations) (nls, precomputed with the activations), so the lane holds the
// exact sum of (u - offset) * a. Two blocks fill one zmm.
// K super-blocks: vpmaddubsw gives int16 pair sums, vpdpwssd multiplies them by the
// sub-block scales into int32 lanes; mins (q4_K/q5_K) and the -32 offset (q6_K) come from
// the activations' 16-element sums.
//
// Everything is in an anonymous namespace (no std:: templates) so no AVX-512 code can be
// merged into a baseline path; only matmul_kernels_avx512() is exported.
// GCC 12's AVX-512 intrinsics pass an undefined vector as the unused merge source, which
// -Wmaybe-uninitialized reports after inlining (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "cpu/matmul.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE float hsum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

SN_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

SN_INLINE uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// [a x8, b x8]
SN_INLINE __m512 pair_ps(float a, float b) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(a)), _mm256_set1_ps(b), 1);
}

struct Act {
  const int8_t* qs;
  const float* d;
  const float* s;
  const int32_t* nls;
  const int16_t* bsums;
  const uint16_t* h;
  const float* f;
};

SN_INLINE Act act_at(const MatmulTask& task, int64_t t) {
  const uint8_t* rec = task.act + t * task.layout.token_bytes;
  const ActLayout& l = task.layout;
  Act a;
  a.qs = reinterpret_cast<const int8_t*>(rec + l.qs);
  a.d = reinterpret_cast<const float*>(rec + l.d);
  a.s = reinterpret_cast<const float*>(rec + l.s);
  a.nls = reinterpret_cast<const int32_t*>(rec + l.nls);
  a.bsums = reinterpret_cast<const int16_t*>(rec + l.bsums);
  a.h = reinterpret_cast<const uint16_t*>(rec + l.h);
  a.f = reinterpret_cast<const float*>(rec);
  return a;
}

template <int NR, int NT>
SN_INLINE void store_tile(const MatmulTask& task, int64_t r, int64_t t, const __m512 (&acc)[NR][NT]) {
#pragma GCC unroll 8
  for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) task.y[(t + j) * task.y_stride + r + i] = hsum(acc[i][j]);
  }
}

// ---- 32-element block types -------------------------------------------------------------

// Unpacked weights of two blocks (or one, in the lower half).
struct W32 {
  __m512i u;
  __m512 dx;
  __m512 mx;  // min of each block in lanes 0 and 8 (q4_1/q5_1)
};

SN_INLINE __m512i nibbles2(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i q = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(qs1), reinterpret_cast<const __m128i*>(qs0));
  const __m512i t = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(q));
  const __m512i s = _mm512_mask_blend_epi64(0xCC, t, _mm512_srli_epi16(t, 4));
  return _mm512_and_si512(s, _mm512_set1_epi8(0x0F));
}

SN_INLINE __m512i nibbles1(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i t = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
  return _mm512_zextsi256_si512(t);
}

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;  // offset 8
  static constexpr bool kMin = false;
  SN_INLINE static void unpack2(const Block* b, W32& w) {
    w.u = nibbles2(b[0].qs, b[1].qs);
    w.dx = pair_ps(h2f(b[0].d), h2f(b[1].d));
  }
  SN_INLINE static void unpack1(const Block* b, W32& w) {
    w.u = nibbles1(b[0].qs);
    w.dx = _mm512_set1_ps(h2f(b[0].d));
  }
};

struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int kShift = -1;
  static constexpr bool kMin = true;
  SN_INLINE static void unpack2(const Block* b, W32& w) {
    w.u = nibbles2(b[0].qs, b[1].qs);
    w.dx = pair_ps(h2f(b[0].d), h2f(b[1].d));
    w.mx = _mm512_maskz_mov_ps(0x0101, pair_ps(h2f(b[0].m), h2f(b[1].m)));
  }
  SN_INLINE static void unpack1(const Block* b, W32& w) {
    w.u = nibbles1(b[0].qs);
    w.dx = _mm512_set1_ps(h2f(b[0].d));
    w.mx = _mm512_maskz_mov_ps(0x0001, _mm512_set1_ps(h2f(b[0].m)));
  }
};

SN_INLINE __m512i fifth_bits2(const uint8_t* qh0, const uint8_t* qh1) {
  const uint64_t m = load_u32(qh0) | (static_cast<uint64_t>(load_u32(qh1)) << 32);
  return _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10));
}
SN_INLINE __m512i fifth_bits1(const uint8_t* qh) {
  return _mm512_maskz_mov_epi8(load_u32(qh), _mm512_set1_epi8(0x10));
}

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kShift = 4;  // offset 16
  static constexpr bool kMin = false;
  SN_INLINE static void unpack2(const Block* b, W32& w) {
    w.u = _mm512_or_si512(nibbles2(b[0].qs, b[1].qs), fifth_bits2(b[0].qh, b[1].qh));
    w.dx = pair_ps(h2f(b[0].d), h2f(b[1].d));
  }
  SN_INLINE static void unpack1(const Block* b, W32& w) {
    w.u = _mm512_or_si512(nibbles1(b[0].qs), fifth_bits1(b[0].qh));
    w.dx = _mm512_set1_ps(h2f(b[0].d));
  }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kShift = -1;
  static constexpr bool kMin = true;
  SN_INLINE static void unpack2(const Block* b, W32& w) {
    w.u = _mm512_or_si512(nibbles2(b[0].qs, b[1].qs), fifth_bits2(b[0].qh, b[1].qh));
    w.dx = pair_ps(h2f(b[0].d), h2f(b[1].d));
    w.mx = _mm512_maskz_mov_ps(0x0101, pair_ps(h2f(b[0].m), h2f(b[1].m)));
  }
  SN_INLINE static void unpack1(const Block* b, W32& w) {
    w.u = _mm512_or_si512(nibbles1(b[0].qs), fifth_bits1(b[0].qh));
    w.dx = _mm512_set1_ps(h2f(b[0].d));
    w.mx = _mm512_maskz_mov_ps(0x0001, _mm512_set1_ps(h2f(b[0].m)));
  }
};

struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kShift = 7;  // q + 128 as unsigned, offset 128
  static constexpr bool kMin = false;
  SN_INLINE static void unpack2(const Block* b, W32& w) {
    const __m512i q = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
    w.u = _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
    w.dx = pair_ps(h2f(b[0].d), h2f(b[1].d));
  }
  SN_INLINE static void unpack1(const Block* b, W32& w) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    w.u = _mm512_zextsi256_si512(_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));
    w.dx = _mm512_set1_ps(h2f(b[0].d));
  }
};

template <class P>
struct Tile32 {
  template <int NR, int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t r, int64_t t) {
    using Block = typename P::Block;
    const Block* rows[NR];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) rows[i] = reinterpret_cast<const Block*>(task.w + (r + i) * task.row_bytes);
    Act act[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) act[j] = act_at(task, t + j);
    __m512 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    const int64_t nb = task.cols / kQK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      W32 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) P::unpack2(rows[i] + b, w[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m512i a = _mm512_load_si512(act[j].qs + b * kQK);
        __m512i init = _mm512_setzero_si512();
        if constexpr (P::kShift >= 0) init = _mm512_slli_epi32(_mm512_load_si512(act[j].nls + b * 8), P::kShift);
        const __m512 dy = pair_ps(act[j].d[b], act[j].d[b + 1]);
        __m512 sy;
        if constexpr (P::kMin) sy = pair_ps(act[j].s[b], act[j].s[b + 1]);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m512i isum = _mm512_dpbusd_epi32(init, w[i].u, a);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(w[i].dx, dy), acc[i][j]);
          if constexpr (P::kMin) acc[i][j] = _mm512_fmadd_ps(w[i].mx, sy, acc[i][j]);
        }
      }
    }
    if (b < nb) {
      W32 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) P::unpack1(rows[i] + b, w[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m512i a = _mm512_zextsi256_si512(_mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].qs + b * kQK)));
        __m512i init = _mm512_setzero_si512();
        if constexpr (P::kShift >= 0) {
          init = _mm512_zextsi256_si512(
              _mm256_slli_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].nls + b * 8)), P::kShift));
        }
        const __m512 dy = _mm512_set1_ps(act[j].d[b]);
        __m512 sy;
        if constexpr (P::kMin) sy = _mm512_set1_ps(act[j].s[b]);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m512i isum = _mm512_dpbusd_epi32(init, w[i].u, a);
          acc[i][j] = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(w[i].dx, dy), acc[i][j], 0x00FF);
          if constexpr (P::kMin) acc[i][j] = _mm512_mask3_fmadd_ps(w[i].mx, sy, acc[i][j], 0x00FF);
        }
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- K super-block types ------------------------------------------------------------------

// The 8 scales and 8 mins (6 bits each) of a q4_K/q5_K block as bytes.
SN_INLINE void k_scales(const uint8_t* q, uint64_t* sc, uint64_t* m) {
  const uint32_t w0 = load_u32(q), w1 = load_u32(q + 4), w2 = load_u32(q + 8);
  const uint32_t sc_lo = w0 & 0x3F3F3F3Fu, m_lo = w1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u);
  const uint32_t m_hi = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *m = m_lo | (static_cast<uint64_t>(m_hi) << 32);
}

// Unpacked weights of one super-block.
struct WK {
  __m512i sc16;   // int16 scales in lanes 0..7 (q4_K/q5_K) or 0..15 (q6_K)
  __m256i aux16;  // q4_K/q5_K: each min twice (16 int16); q6_K: the 16 scales as int16
  __m512 d;       // d broadcast
  __m512 dmin;    // dmin broadcast (q4_K/q5_K)
};

// Scale vector for chunk k (64 elements, int16 lanes: 2 elements each) of a q4_K/q5_K block:
// lanes 0..15 get scale 2k, lanes 16..31 scale 2k+1.
SN_INLINE __m512i k_chunk_scales(__m512i sc16, int k) {
  const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(2 * k))),
                                         _mm256_set1_epi16(static_cast<short>(2 * k + 1)), 1);
  return _mm512_permutexvar_epi16(idx, sc16);
}

// q6_K chunk k: int16 lanes 8g..8g+7 get scale 4k+g (lane l covers elements 2l, 2l+1).
struct Q6Index {
  int16_t v[4][32];
};
constexpr Q6Index make_q6_index() {
  Q6Index x{};
  for (int k = 0; k < 4; ++k) {
    for (int l = 0; l < 32; ++l) x.v[k][l] = static_cast<int16_t>(4 * k + l / 8);
  }
  return x;
}
alignas(64) constexpr Q6Index kQ6Index = make_q6_index();

SN_INLINE __m512i q6_chunk_scales(__m512i sc16, int k) {
  return _mm512_permutexvar_epi16(_mm512_load_si512(kQ6Index.v[k]), sc16);
}

struct Q4_K {
  using Block = BlockQ4_K;
  static constexpr bool kMin = true;
  SN_INLINE static void scales(const Block& b, WK& w) {
    uint64_t sc, m;
    k_scales(b.scales, &sc, &m);
    w.sc16 = _mm512_zextsi256_si512(_mm256_zextsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc)))));
    const __m128i m8 = _mm_cvtsi64_si128(static_cast<long long>(m));
    w.aux16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    w.d = _mm512_set1_ps(h2f(b.d));
    w.dmin = _mm512_set1_ps(h2f(b.dmin));
  }
  // Unsigned values of elements 64k..64k+63.
  SN_INLINE static __m512i chunk(const Block& b, int k) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * k));
    const __m512i t = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    return _mm512_and_si512(t, _mm512_set1_epi8(0x0F));
  }
  SN_INLINE static __m512i chunk_scales(const WK& w, int k) { return k_chunk_scales(w.sc16, k); }
};

struct Q5_K {
  using Block = BlockQ5_K;
  static constexpr bool kMin = true;
  SN_INLINE static void scales(const Block& b, WK& w) {
    uint64_t sc, m;
    k_scales(b.scales, &sc, &m);
    w.sc16 = _mm512_zextsi256_si512(_mm256_zextsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc)))));
    const __m128i m8 = _mm_cvtsi64_si128(static_cast<long long>(m));
    w.aux16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    w.d = _mm512_set1_ps(h2f(b.d));
    w.dmin = _mm512_set1_ps(h2f(b.dmin));
  }
  SN_INLINE static __m512i chunk(const Block& b, int k) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * k));
    const __m512i t = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1),
                                       _mm512_set1_epi8(0x0F));
    // Fifth bit of sub-block j is bit j of qh[l]; chunk k holds sub-blocks 2k and 2k+1.
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    const __m512i hh = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 1), 1);
    __m512i bit;
    switch (k) {
      case 0: bit = _mm512_slli_epi16(hh, 4); break;
      case 1: bit = _mm512_slli_epi16(hh, 2); break;
      case 2: bit = hh; break;
      default: bit = _mm512_srli_epi16(hh, 2); break;
    }
    return _mm512_ternarylogic_epi32(t, bit, _mm512_set1_epi8(0x10), 0xF8);  // t | (bit & 0x10)
  }
  SN_INLINE static __m512i chunk_scales(const WK& w, int k) { return k_chunk_scales(w.sc16, k); }
};

struct Q6_K {
  using Block = BlockQ6_K;
  static constexpr bool kMin = false;
  SN_INLINE static void scales(const Block& b, WK& w) {
    const __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    w.sc16 = _mm512_zextsi256_si512(s);
    w.aux16 = s;
    w.d = _mm512_set1_ps(h2f(b.d));
  }
  // Unsigned 6-bit values of elements 64k..64k+63.
  SN_INLINE static __m512i chunk(const Block& b, int k) {
    const int half = k / 2;
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * half);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * half));
    const __m512i hh = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 2), 1);
    if ((k & 1) == 0) {
      // low nibbles | ((qh >> 0 or 2) & 3) << 4
      return _mm512_ternarylogic_epi32(_mm512_and_si512(ql, _mm512_set1_epi8(0x0F)), _mm512_slli_epi16(hh, 4),
                                       _mm512_set1_epi8(0x30), 0xF8);
    }
    return _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), _mm512_set1_epi8(0x0F)), hh,
                                     _mm512_set1_epi8(0x30), 0xF8);
  }
  SN_INLINE static __m512i chunk_scales(const WK& w, int k) { return q6_chunk_scales(w.sc16, k); }
};

template <class P>
struct TileK {
  template <int NR, int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t r, int64_t t) {
    using Block = typename P::Block;
    const Block* rows[NR];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) rows[i] = reinterpret_cast<const Block*>(task.w + (r + i) * task.row_bytes);
    Act act[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) act[j] = act_at(task, t + j);
    __m512 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    const int64_t nb = task.cols / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
      WK w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) P::scales(rows[i][b], w[i]);
      __m512i isum[NR][NT];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) isum[i][j] = _mm512_setzero_si512();
      }
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        __m512i u[NR], sc[NR];
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          u[i] = P::chunk(rows[i][b], k);
          sc[i] = P::chunk_scales(w[i], k);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) {
          const __m512i a = _mm512_load_si512(act[j].qs + b * kQKK + 64 * k);
#pragma GCC unroll 8
          for (int i = 0; i < NR; ++i) isum[i][j] = _mm512_dpwssd_epi32(isum[i][j], _mm512_maddubs_epi16(u[i], a), sc[i]);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m256i bs = _mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].bsums + b * 16));
        const __m512 dy = _mm512_set1_ps(act[j].d[b]);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m512i aux = _mm512_zextsi256_si512(_mm256_madd_epi16(bs, w[i].aux16));
          if constexpr (P::kMin) {
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][j]), _mm512_mul_ps(w[i].d, dy), acc[i][j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(aux), _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), w[i].dmin), dy),
                                        acc[i][j]);
          } else {
            const __m512i s = _mm512_sub_epi32(isum[i][j], _mm512_slli_epi32(aux, 5));
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w[i].d, dy), acc[i][j]);
          }
        }
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- float types ----------------------------------------------------------------------------

struct LoadF32 {
  SN_INLINE static __m512 load(const void* p, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(p) + i); }
  SN_INLINE static __m512 load_tail(const void* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  }
};
struct LoadF16 {
  SN_INLINE static __m512 load(const void* p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i)));
  }
  SN_INLINE static __m512 load_tail(const void* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  }
};
struct LoadBF16 {
  SN_INLINE static __m512 load(const void* p, int64_t i) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  SN_INLINE static __m512 load_tail(const void* p, int64_t i, __mmask16 m) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

template <class L, bool kF32Act>
struct TileF {
  template <int NR, int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t r, int64_t t) {
    const void* rows[NR];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) rows[i] = task.w + (r + i) * task.row_bytes;
    const void* xs[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const Act a = act_at(task, t + j);
      xs[j] = kF32Act ? static_cast<const void*>(a.f) : static_cast<const void*>(a.h);
    }
    __m512 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    const int64_t n = task.cols;
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) {
      __m512 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) w[i] = L::load(rows[i], c);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m512 x = kF32Act ? LoadF32::load(xs[j], c) : L::load(xs[j], c);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm512_fmadd_ps(w[i], x, acc[i][j]);
      }
    }
    if (c < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - c)) - 1);
      __m512 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) w[i] = L::load_tail(rows[i], c, m);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m512 x = kF32Act ? LoadF32::load_tail(xs[j], c, m) : L::load_tail(xs[j], c, m);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm512_mask3_fmadd_ps(w[i], x, acc[i][j], m);
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- tiling -------------------------------------------------------------------------------

// Rows in groups of NR, tokens in groups of NT; leftovers with narrower tiles. For one token
// (GEMV) the tile is NR x 1: NR independent weight streams.
template <class T, int NR, int NT>
void run_tiles(const MatmulTask& task, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  int64_t r = r0;
  for (; r + NR <= r1; r += NR) {
    int64_t t = t0;
    for (; t + NT <= t1; t += NT) T::template run<NR, NT>(task, r, t);
    for (; t < t1; ++t) T::template run<NR, 1>(task, r, t);
  }
  for (; r < r1; ++r) {
    int64_t t = t0;
    for (; t + NT <= t1; t += NT) T::template run<1, NT>(task, r, t);
    for (; t < t1; ++t) T::template run<1, 1>(task, r, t);
  }
}

constexpr MatmulKernelTable make_table() {
  MatmulKernelTable t{};
  t.by_type[static_cast<int>(DType::kF32)] = run_tiles<TileF<LoadF32, true>, 4, 4>;
  t.by_type[static_cast<int>(DType::kF16)] = run_tiles<TileF<LoadF16, false>, 4, 4>;
  t.by_type[static_cast<int>(DType::kBF16)] = run_tiles<TileF<LoadBF16, false>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ4_0)] = run_tiles<Tile32<Q4_0>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ4_1)] = run_tiles<Tile32<Q4_1>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ5_0)] = run_tiles<Tile32<Q5_0>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ5_1)] = run_tiles<Tile32<Q5_1>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ8_0)] = run_tiles<Tile32<Q8_0>, 4, 4>;
  t.by_type[static_cast<int>(DType::kQ4_K)] = run_tiles<TileK<Q4_K>, 2, 4>;
  t.by_type[static_cast<int>(DType::kQ5_K)] = run_tiles<TileK<Q5_K>, 2, 4>;
  t.by_type[static_cast<int>(DType::kQ6_K)] = run_tiles<TileK<Q6_K>, 2, 4>;
  return t;
}

constexpr MatmulKernelTable kTable = make_table();

}  // namespace

const MatmulKernelTable& matmul_kernels_avx512() { return kTable; }

}  // namespace sn::hal::cpu
