// AVX-512 VNNI matmul kernels over packed weights (layouts in pack.h): q4_0, q8_0, q4_K
// and q6_K, GEMV and GEMM alike.
//
// A tile is one group of 16 rows x NT tokens. Per block, the group's weights are unpacked
// once into zmm registers whose 32-bit lane r holds 4 elements of row r, and reused for NT
// tokens; each token's 4 activation bytes are a broadcast memory operand of vpdpbusd, so
// every accumulator lane is one output row and no horizontal sum is needed.
//
// Batch invariance: every (row, token) output is computed by the same instructions in block
// order whatever NT: the integer block sums are exact (their association does not matter)
// and each block adds into the token's float accumulator with one fma, exactly as
//   acc = fma(float(isum), d_w * d_a, acc)            (q4_0, q8_0, q6_K)
//   acc = fma(float(isum), d_w * d_a, acc); acc = acc - float(mins) * (dmin_w * d_a)  (q4_K)
// The integer sums equal the scalar reference's (quant.cpp vec_dot_ref); only the float
// accumulation order differs from it.
//
// Everything is in an anonymous namespace (no std:: templates) so no AVX-512 code can be
// merged into a baseline path; only packed_kernel_avx512() is exported.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "cpu/matmul.h"
#include "cpu/pack.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE __m512i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

SN_INLINE __m512 load_f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
}

struct Act {
  const int8_t* qs;
  const float* d;
  const int32_t* off;      // q4_0: off8, q8_0: off128, q6_K: off32
  const int16_t* bsums32;  // q4_K
};

SN_INLINE const uint8_t* act_rec(const MatmulTask& task, int64_t t) { return task.act + t * task.layout.token_bytes; }

// Decode streams each weight once from DRAM (and a batch of decodes makes one pass per token
// tile, the first from DRAM). The hardware prefetchers alone left the packed
// GEMV at ~44 GB/s of the ~61 GB/s the cores can read; asking for the lines 4 KiB ahead of
// each stream lifted it to ~54 GB/s (MatmulGemvStream benchmark; 8 and 16 KiB were worse).
// Prefetches never fault, so running past the end of a weight is harmless.
constexpr int64_t kPrefetchBytes = 4096;

template <int64_t kBytes>
SN_INLINE void prefetch_ahead(const uint8_t* p) {
#pragma GCC unroll 64
  for (int64_t l = 0; l < kBytes; l += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + l), _MM_HINT_T0);
  }
}

SN_INLINE __mmask16 row_mask(const MatmulTask& task, int64_t g) {
  const int64_t n = task.rows - g * kPackRows;
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

template <int NT>
SN_INLINE void store_tile(const MatmulTask& task, int64_t g, int64_t t, const __m512 (&acc)[NT]) {
  const __mmask16 m = row_mask(task, g);
#pragma GCC unroll 8
  for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(task.y + (t + j) * task.y_stride + g * kPackRows, m, acc[j]);
}

// Four chunks of 64 bytes of nibbles -> 8 zmm: u[j] low nibbles of chunk j, u[j+4] high.
SN_INLINE void unpack_nibbles(const uint8_t* q, __m512i (&u)[8]) {
  const __m512i m = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i v = _mm512_load_si512(q + 64 * j);
    u[j] = _mm512_and_si512(v, m);
    u[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
  }
}

// Few tokens (GEMV): four chunks of nibbles -> u[j] = low nibbles (group j) and
// u[j+4] = 16 * high nibble (group j+4), one op each; dot32_nib undoes the factor 16 exactly.
SN_INLINE void unpack_nibbles_x16(const uint8_t* q, __m512i (&u)[8]) {
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i v = _mm512_load_si512(q + 64 * j);
    u[j] = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    u[j + 4] = _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(0xF0)));
  }
}

// init + the 32-block dot product from unpack_nibbles_x16's registers: the high groups sum
// into their own chain, 16 times too large and so exactly divisible by 16.
SN_INLINE __m512i dot32_x16(__m512i init, const __m512i (&u)[8], const int8_t* a) {
  __m512i lo = init, hi = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    lo = _mm512_dpbusd_epi32(lo, u[j], bcast32(a + 4 * j));
    hi = _mm512_dpbusd_epi32(hi, u[j + 4], bcast32(a + 4 * j + 16));
  }
  return _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
}

// sum over the 8 element groups of a 32-block: init + u[k] . a[4k..4k+3] per lane.
// Two chains when few tokens share the unpacked weights, for latency.
template <int NT>
SN_INLINE __m512i dot32(__m512i init, const __m512i (&u)[8], const int8_t* a) {
  if constexpr (NT <= 2) {
    __m512i s0 = init, s1 = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < 8; k += 2) {
      s0 = _mm512_dpbusd_epi32(s0, u[k], bcast32(a + 4 * k));
      s1 = _mm512_dpbusd_epi32(s1, u[k + 1], bcast32(a + 4 * k + 4));
    }
    return _mm512_add_epi32(s0, s1);
  } else {
    __m512i s = init;
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) s = _mm512_dpbusd_epi32(s, u[k], bcast32(a + 4 * k));
    return s;
  }
}

// ---- q4_0 and q8_0 -----------------------------------------------------------------------

struct PQ4_0 {
  static constexpr int64_t kQuantBytes = 256;
  static constexpr bool kNibbles = true;
  SN_INLINE static const int32_t* off(const MatmulTask& task, const uint8_t* rec) {
    return reinterpret_cast<const int32_t*>(rec + task.layout.off8);
  }
  SN_INLINE static void unpack(const uint8_t* q, __m512i (&u)[8]) { unpack_nibbles(q, u); }
};

struct PQ8_0 {
  static constexpr int64_t kQuantBytes = 512;
  static constexpr bool kNibbles = false;
  SN_INLINE static const int32_t* off(const MatmulTask& task, const uint8_t* rec) {
    return reinterpret_cast<const int32_t*>(rec + task.layout.off128);
  }
  SN_INLINE static void unpack(const uint8_t* q, __m512i (&u)[8]) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) u[k] = _mm512_load_si512(q + 64 * k);
  }
};

template <class P>
struct Tile32 {
  template <int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t g, int64_t t, bool prefetch) {
    const int64_t nb = task.cols / kQK;
    const uint8_t* quants = task.w + g * task.row_bytes;
    const uint8_t* scales = quants + nb * P::kQuantBytes;
    Act act[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const uint8_t* rec = act_rec(task, t + j);
      act[j].qs = reinterpret_cast<const int8_t*>(rec + task.layout.qs);
      act[j].d = reinterpret_cast<const float*>(rec + task.layout.d);
      act[j].off = P::off(task, rec);
    }
    __m512 acc[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      if (prefetch) prefetch_ahead<P::kQuantBytes>(quants + b * P::kQuantBytes);
      constexpr bool kX16 = P::kNibbles && NT <= 2;
      __m512i u[8];
      if constexpr (kX16) {
        unpack_nibbles_x16(quants + b * P::kQuantBytes, u);
      } else {
        P::unpack(quants + b * P::kQuantBytes, u);
      }
      const __m512 dw = load_f16x16(scales + 32 * b);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m512i init = _mm512_set1_epi32(act[j].off[b]);
        __m512i isum;
        if constexpr (kX16) {
          isum = dot32_x16(init, u, act[j].qs + b * kQK);
        } else {
          isum = dot32<NT>(init, u, act[j].qs + b * kQK);
        }
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(act[j].d[b])), acc[j]);
      }
    }
    store_tile<NT>(task, g, t, acc);
  }

  // One token (GEMV), two groups (32 rows): each activation broadcast feeds both groups.
  // Per output the same operations as run<1>.
  SN_INLINE static void run_pair(const MatmulTask& task, int64_t g, int64_t t) {
    const int64_t nb = task.cols / kQK;
    const uint8_t* q0 = task.w + g * task.row_bytes;
    const uint8_t* q1 = q0 + task.row_bytes;
    const uint8_t* s0 = q0 + nb * P::kQuantBytes;
    const uint8_t* s1 = q1 + nb * P::kQuantBytes;
    const uint8_t* rec = act_rec(task, t);
    const int8_t* qs = reinterpret_cast<const int8_t*>(rec + task.layout.qs);
    const float* d = reinterpret_cast<const float*>(rec + task.layout.d);
    const int32_t* off = P::off(task, rec);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<P::kQuantBytes>(q0 + b * P::kQuantBytes);
      prefetch_ahead<P::kQuantBytes>(q1 + b * P::kQuantBytes);
      __m512i u0[8], u1[8];
      if constexpr (P::kNibbles) {
        unpack_nibbles_x16(q0 + b * P::kQuantBytes, u0);
        unpack_nibbles_x16(q1 + b * P::kQuantBytes, u1);
      } else {
        P::unpack(q0 + b * P::kQuantBytes, u0);
        P::unpack(q1 + b * P::kQuantBytes, u1);
      }
      const int8_t* a = qs + b * kQK;
      const __m512i init = _mm512_set1_epi32(off[b]);
      __m512i lo0 = init, lo1 = init, hi0 = _mm512_setzero_si512(), hi1 = _mm512_setzero_si512();
      if constexpr (P::kNibbles) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const __m512i al = bcast32(a + 4 * j), ah = bcast32(a + 4 * j + 16);
          lo0 = _mm512_dpbusd_epi32(lo0, u0[j], al);
          lo1 = _mm512_dpbusd_epi32(lo1, u1[j], al);
          hi0 = _mm512_dpbusd_epi32(hi0, u0[j + 4], ah);
          hi1 = _mm512_dpbusd_epi32(hi1, u1[j + 4], ah);
        }
        hi0 = _mm512_srai_epi32(hi0, 4);
        hi1 = _mm512_srai_epi32(hi1, 4);
      } else {
#pragma GCC unroll 4
        for (int k = 0; k < 8; k += 2) {
          const __m512i al = bcast32(a + 4 * k), ah = bcast32(a + 4 * k + 4);
          lo0 = _mm512_dpbusd_epi32(lo0, u0[k], al);
          lo1 = _mm512_dpbusd_epi32(lo1, u1[k], al);
          hi0 = _mm512_dpbusd_epi32(hi0, u0[k + 1], ah);
          hi1 = _mm512_dpbusd_epi32(hi1, u1[k + 1], ah);
        }
      }
      const __m512 dy = _mm512_set1_ps(d[b]);
      acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo0, hi0)), _mm512_mul_ps(load_f16x16(s0 + 32 * b), dy), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo1, hi1)), _mm512_mul_ps(load_f16x16(s1 + 32 * b), dy), acc1);
    }
    const __m512 a0[1] = {acc0}, a1[1] = {acc1};
    store_tile<1>(task, g, t, a0);
    store_tile<1>(task, g + 1, t, a1);
  }
};

// ---- q4_K ----------------------------------------------------------------------------------

struct TileQ4_K {
  template <int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t g, int64_t t, bool prefetch) {
    const int64_t nb = task.cols / kQKK;
    const uint8_t* base = task.w + g * task.row_bytes;
    Act act[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const uint8_t* rec = act_rec(task, t + j);
      act[j].qs = reinterpret_cast<const int8_t*>(rec + task.layout.qs);
      act[j].d = reinterpret_cast<const float*>(rec + task.layout.d);
      act[j].bsums32 = reinterpret_cast<const int16_t*>(rec + task.layout.bsums32);
    }
    __m512 acc[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = base + b * 2368;
      if (prefetch) prefetch_ahead<2368>(p);
      __m512i isum[NT];
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) isum[j] = _mm512_setzero_si512();
      for (int s = 0; s < 8; ++s) {
        constexpr bool kX16 = NT <= 2;
        __m512i u[8];
        if constexpr (kX16) {
          unpack_nibbles_x16(p + 256 * s, u);
        } else {
          unpack_nibbles(p + 256 * s, u);
        }
        const __m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p + 2048 + 16 * s)));
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) {
          const int8_t* a = act[j].qs + b * kQKK + 32 * s;
          __m512i dot;
          if constexpr (kX16) {
            dot = dot32_x16(_mm512_setzero_si512(), u, a);
          } else {
            dot = dot32<NT>(_mm512_setzero_si512(), u, a);
          }
          isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(dot, sc));
        }
      }
      __m512i mins[4];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        mins[q] = _mm512_cvtepu8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 2048 + 128 + 32 * q)));
      }
      const __m512 dw = load_f16x16(p + 2048 + 256);
      const __m512 dmw = load_f16x16(p + 2048 + 256 + 32);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        __m512i m = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) m = _mm512_dpwssd_epi32(m, mins[q], bcast32(act[j].bsums32 + b * 8 + 2 * q));
        const __m512 dy = _mm512_set1_ps(act[j].d[b]);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, dy), acc[j]);
        acc[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmw, dy), acc[j]);
      }
    }
    store_tile<NT>(task, g, t, acc);
  }
};

// ---- q6_K ----------------------------------------------------------------------------------

struct TileQ6_K {
  template <int NT>
  SN_INLINE static void run(const MatmulTask& task, int64_t g, int64_t t, bool prefetch) {
    const int64_t nb = task.cols / kQKK;
    const uint8_t* base = task.w + g * task.row_bytes;
    Act act[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) {
      const uint8_t* rec = act_rec(task, t + j);
      act[j].qs = reinterpret_cast<const int8_t*>(rec + task.layout.qs);
      act[j].d = reinterpret_cast<const float*>(rec + task.layout.d);
      act[j].off = reinterpret_cast<const int32_t*>(rec + task.layout.off32);
    }
    __m512 acc[NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = base + b * 3392;
      if (prefetch) prefetch_ahead<3392>(p);
      __m512i isum[NT];
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) isum[j] = _mm512_setzero_si512();
      for (int s = 0; s < 16; ++s) {
        const __m512i l0 = _mm512_load_si512(p + 128 * s), l1 = _mm512_load_si512(p + 128 * s + 64);
        const __m512i h = _mm512_load_si512(p + 2048 + 64 * s);
        __m512i u[4];
        u[0] = _mm512_ternarylogic_epi32(_mm512_and_si512(l0, m4), _mm512_slli_epi16(h, 4), m2, 0xF8);
        u[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(l1, m4), _mm512_slli_epi16(h, 2), m2, 0xF8);
        u[2] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l0, 4), m4), h, m2, 0xF8);
        u[3] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m4), _mm512_srli_epi16(h, 2), m2, 0xF8);
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p + 3072 + 16 * s)));
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) {
          const int8_t* a = act[j].qs + b * kQKK + 16 * s;
          __m512i dot = _mm512_set1_epi32(act[j].off[b * 16 + s]);
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) dot = _mm512_dpbusd_epi32(dot, u[k], bcast32(a + 4 * k));
          isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(dot, sc));
        }
      }
      const __m512 dw = load_f16x16(p + 3328);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, _mm512_set1_ps(act[j].d[b])), acc[j]);
      }
    }
    store_tile<NT>(task, g, t, acc);
  }
};

// ---- tiling ----------------------------------------------------------------------------------

// Groups covering rows [r0, r1) (r0 a multiple of 16), tokens in tiles of NT then 1.
template <class T, int NT>
void run_packed(const MatmulTask& task, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
  int64_t g = r0 / kPackRows;
  const int64_t g1 = (r1 + kPackRows - 1) / kPackRows;
  if constexpr (requires { T::run_pair(task, g, t0); }) {
    if (t1 - t0 == 1) {
      for (; g + 2 <= g1; g += 2) T::run_pair(task, g, t0);
    }
  }
  for (; g < g1; ++g) {
    int64_t t = t0;
    // The group's first pass over its weights brings them in from DRAM: it prefetches ahead
    // (into the next group at its end); later passes find them in cache.
    for (; t + NT <= t1; t += NT) T::template run<NT>(task, g, t, t == t0);
    for (; t < t1; ++t) T::template run<1>(task, g, t, t == t0);
  }
}

}  // namespace

MatmulKernel packed_kernel_avx512(DType type) {
  switch (type) {
    case DType::kQ4_0: return run_packed<Tile32<PQ4_0>, 4>;
    case DType::kQ8_0: return run_packed<Tile32<PQ8_0>, 4>;
    case DType::kQ4_K: return run_packed<TileQ4_K, 4>;
    case DType::kQ6_K: return run_packed<TileQ6_K, 4>;
    default: return nullptr;
  }
}

}  // namespace sn::hal::cpu
