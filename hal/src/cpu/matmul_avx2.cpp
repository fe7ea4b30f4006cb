// AVX2 + FMA + F16C matmul kernels (Isa::kAvx2): 8 float lanes per output.
//
// Same structure as matmul_avx512.cpp: tiles of NR weight rows x NT tokens, each
// (row, token) output running the same instruction sequence into its own 8-lane
// accumulator in block order and reduced by one fixed tree, so GEMV and GEMM agree bit for
// bit (batch invariance). 32-blocks: vpmaddubsw(u, a) + vpmaddwd(1) give int32 lanes of 4
// elements, started from -offset * (sum of the 4 activations) (nls), exact; q8_0 uses the
// sign trick (|w| * sign(a, w)) since w + 128 would overflow vpmaddubsw's int16 pairs.
// K super-blocks: vpmaddubsw then vpmaddwd with the sub-block scales.
//
// Everything is in an anonymous namespace (no std:: templates); only
// matmul_kernels_avx2() is exported.
#include <immintrin.h>

#include <cstring>

#include "cpu/matmul.h"

namespace sn::hal::cpu {
namespace {

#define SN_INLINE inline __attribute__((always_inline))

SN_INLINE float hsum(__m256 v) {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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
SN_INLINE void store_tile(const MatmulTask& task, int64_t r, int64_t t, const __m256 (&acc)[NR][NT]) {
#pragma GCC unroll 8
  for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NT; ++j) task.y[(t + j) * task.y_stride + r + i] = hsum(acc[i][j]);
  }
}

// 0xFF in byte j where bit j of x is set.
SN_INLINE __m256i bytes_from_bits(uint32_t x) {
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

SN_INLINE __m256i nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// Exact int32 lanes (4 elements each) of u * a, u unsigned bytes <= 127.
SN_INLINE __m256i dot_u8(__m256i u, __m256i a) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1));
}

// ---- 32-element block types -------------------------------------------------------------

struct W32 {
  __m256i u;  // unsigned values, or signed q8 values (kSigned)
  __m256 dx;
  __m256 mx;  // block min in lane 0 (q4_1/q5_1)
};

struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;
  static constexpr bool kMin = false, kSigned = false;
  SN_INLINE static void unpack(const Block& b, W32& w) {
    w.u = nibbles(b.qs);
    w.dx = _mm256_set1_ps(h2f(b.d));
  }
};
struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr int kShift = -1;
  static constexpr bool kMin = true, kSigned = false;
  SN_INLINE static void unpack(const Block& b, W32& w) {
    w.u = nibbles(b.qs);
    w.dx = _mm256_set1_ps(h2f(b.d));
    w.mx = _mm256_setr_ps(h2f(b.m), 0, 0, 0, 0, 0, 0, 0);
  }
};
struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kShift = 4;
  static constexpr bool kMin = false, kSigned = false;
  SN_INLINE static void unpack(const Block& b, W32& w) {
    w.u = _mm256_or_si256(nibbles(b.qs), _mm256_and_si256(bytes_from_bits(load_u32(b.qh)), _mm256_set1_epi8(0x10)));
    w.dx = _mm256_set1_ps(h2f(b.d));
  }
};
struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kShift = -1;
  static constexpr bool kMin = true, kSigned = false;
  SN_INLINE static void unpack(const Block& b, W32& w) {
    w.u = _mm256_or_si256(nibbles(b.qs), _mm256_and_si256(bytes_from_bits(load_u32(b.qh)), _mm256_set1_epi8(0x10)));
    w.dx = _mm256_set1_ps(h2f(b.d));
    w.mx = _mm256_setr_ps(h2f(b.m), 0, 0, 0, 0, 0, 0, 0);
  }
};
struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kShift = -1;
  static constexpr bool kMin = false, kSigned = true;
  SN_INLINE static void unpack(const Block& b, W32& w) {
    w.u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    w.dx = _mm256_set1_ps(h2f(b.d));
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
    __m256 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    const int64_t nb = task.cols / kQK;
    for (int64_t b = 0; b < nb; ++b) {
      W32 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) P::unpack(rows[i][b], w[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].qs + b * kQK));
        __m256i init = _mm256_setzero_si256();
        if constexpr (P::kShift >= 0) {
          init = _mm256_slli_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].nls + b * 8)), P::kShift);
        }
        const __m256 dy = _mm256_set1_ps(act[j].d[b]);
        __m256 sy;
        if constexpr (P::kMin) sy = _mm256_set1_ps(act[j].s[b]);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          __m256i isum;
          if constexpr (P::kSigned) {
            isum = dot_u8(_mm256_sign_epi8(w[i].u, w[i].u), _mm256_sign_epi8(a, w[i].u));
          } else {
            isum = _mm256_add_epi32(init, dot_u8(w[i].u, a));
          }
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(w[i].dx, dy), acc[i][j]);
          if constexpr (P::kMin) acc[i][j] = _mm256_fmadd_ps(w[i].mx, sy, acc[i][j]);
        }
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- K super-block types ------------------------------------------------------------------

SN_INLINE void k_scales(const uint8_t* q, uint8_t* sc, uint8_t* m) {
  const uint32_t w0 = load_u32(q), w1 = load_u32(q + 4), w2 = load_u32(q + 8);
  const uint32_t v[4] = {w0 & 0x3F3F3F3Fu, (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u), w1 & 0x3F3F3F3Fu,
                         ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u)};
  std::memcpy(sc, v, 8);
  std::memcpy(m, v + 2, 8);
}

struct WK {
  uint8_t sc[8];
  __m256i mins16;  // each min twice (q4_K/q5_K) or the 16 scales (q6_K), int16
  const int8_t* sc6;
  __m256 d, dmin;
};

struct Q4_K {
  using Block = BlockQ4_K;
  static constexpr bool kMin = true;
  static constexpr int kChunks = 8;  // of 32 elements
  SN_INLINE static void scales(const Block& b, WK& w) {
    uint8_t m[8];
    k_scales(b.scales, w.sc, m);
    const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
    w.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    w.d = _mm256_set1_ps(h2f(b.d));
    w.dmin = _mm256_set1_ps(h2f(b.dmin));
  }
  SN_INLINE static __m256i chunk(const Block& b, int c) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * (c / 2)));
    return _mm256_and_si256((c & 1) ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0F));
  }
  SN_INLINE static __m256i chunk_scales(const WK& w, int c) { return _mm256_set1_epi16(w.sc[c]); }
};

struct Q5_K {
  using Block = BlockQ5_K;
  static constexpr bool kMin = true;
  static constexpr int kChunks = 8;
  SN_INLINE static void scales(const Block& b, WK& w) {
    uint8_t m[8];
    k_scales(b.scales, w.sc, m);
    const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
    w.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    w.d = _mm256_set1_ps(h2f(b.d));
    w.dmin = _mm256_set1_ps(h2f(b.dmin));
  }
  SN_INLINE static __m256i chunk(const Block& b, int c) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * (c / 2)));
    const __m256i nib = _mm256_and_si256((c & 1) ? _mm256_srli_epi16(q, 4) : q, _mm256_set1_epi8(0x0F));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << c));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
    return _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  }
  SN_INLINE static __m256i chunk_scales(const WK& w, int c) { return _mm256_set1_epi16(w.sc[c]); }
};

struct Q6_K {
  using Block = BlockQ6_K;
  static constexpr bool kMin = false;
  static constexpr int kChunks = 8;
  SN_INLINE static void scales(const Block& b, WK& w) {
    w.sc6 = b.scales;
    w.mins16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    w.d = _mm256_set1_ps(h2f(b.d));
  }
  SN_INLINE static __m256i chunk(const Block& b, int c) {
    const int half = c / 4, q = c % 4;
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * half + 32 * (q & 1)));
    const __m256i nib = _mm256_and_si256((q & 2) ? _mm256_srli_epi16(l, 4) : l, _mm256_set1_epi8(0x0F));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * half));
    __m256i hb;
    switch (q) {
      case 0: hb = _mm256_slli_epi16(h, 4); break;
      case 1: hb = _mm256_slli_epi16(h, 2); break;
      case 2: hb = h; break;
      default: hb = _mm256_srli_epi16(h, 2); break;
    }
    return _mm256_or_si256(nib, _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
  }
  SN_INLINE static __m256i chunk_scales(const WK& w, int c) {
    return _mm256_set_m128i(_mm_set1_epi16(w.sc6[2 * c + 1]), _mm_set1_epi16(w.sc6[2 * c]));
  }
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
    __m256 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    const int64_t nb = task.cols / kQKK;
    for (int64_t b = 0; b < nb; ++b) {
      WK w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) P::scales(rows[i][b], w[i]);
      __m256i isum[NR][NT];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) isum[i][j] = _mm256_setzero_si256();
      }
#pragma GCC unroll 8
      for (int c = 0; c < P::kChunks; ++c) {
        __m256i u[NR], sc[NR];
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          u[i] = P::chunk(rows[i][b], c);
          sc[i] = P::chunk_scales(w[i], c);
        }
#pragma GCC unroll 8
        for (int j = 0; j < NT; ++j) {
          const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].qs + b * kQKK + 32 * c));
#pragma GCC unroll 8
          for (int i = 0; i < NR; ++i) {
            isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(u[i], a), sc[i]));
          }
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m256i bs = _mm256_load_si256(reinterpret_cast<const __m256i*>(act[j].bsums + b * 16));
        const __m256 dy = _mm256_set1_ps(act[j].d[b]);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m256i aux = _mm256_madd_epi16(bs, w[i].mins16);
          if constexpr (P::kMin) {
            acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_mul_ps(w[i].d, dy), acc[i][j]);
            acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(aux), _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), w[i].dmin), dy),
                                        acc[i][j]);
          } else {
            const __m256i s = _mm256_sub_epi32(isum[i][j], _mm256_slli_epi32(aux, 5));
            acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(w[i].d, dy), acc[i][j]);
          }
        }
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- float types ----------------------------------------------------------------------------

struct LoadF32 {
  SN_INLINE static __m256 load(const void* p, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
};
struct LoadF16 {
  SN_INLINE static __m256 load(const void* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  }
};
struct LoadBF16 {
  SN_INLINE static __m256 load(const void* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

template <class L, int kElemBytes>
SN_INLINE __m256 load_tail(const void* p, int64_t i, int64_t n) {
  alignas(32) uint8_t buf[8 * 4] = {};
  std::memcpy(buf, static_cast<const uint8_t*>(p) + i * kElemBytes, static_cast<size_t>(n * kElemBytes));
  return L::load(buf, 0);
}

template <class L, int kElemBytes, bool kF32Act>
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
    __m256 acc[NR][NT];
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    const int64_t n = task.cols;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      __m256 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) w[i] = L::load(rows[i], c);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m256 x = kF32Act ? LoadF32::load(xs[j], c) : L::load(xs[j], c);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
      }
    }
    if (c < n) {
      __m256 w[NR];
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) w[i] = load_tail<L, kElemBytes>(rows[i], c, n - c);
#pragma GCC unroll 8
      for (int j = 0; j < NT; ++j) {
        const __m256 x = kF32Act ? load_tail<LoadF32, 4>(xs[j], c, n - c) : load_tail<L, kElemBytes>(xs[j], c, n - c);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
      }
    }
    store_tile<NR, NT>(task, r, t, acc);
  }
};

// ---- tiling -------------------------------------------------------------------------------

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
  t.by_type[static_cast<int>(DType::kF32)] = run_tiles<TileF<LoadF32, 4, true>, 2, 4>;
  t.by_type[static_cast<int>(DType::kF16)] = run_tiles<TileF<LoadF16, 2, false>, 2, 4>;
  t.by_type[static_cast<int>(DType::kBF16)] = run_tiles<TileF<LoadBF16, 2, false>, 2, 4>;
  t.by_type[static_cast<int>(DType::kQ4_0)] = run_tiles<Tile32<Q4_0>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ4_1)] = run_tiles<Tile32<Q4_1>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ5_0)] = run_tiles<Tile32<Q5_0>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ5_1)] = run_tiles<Tile32<Q5_1>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ8_0)] = run_tiles<Tile32<Q8_0>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ4_K)] = run_tiles<TileK<Q4_K>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ5_K)] = run_tiles<TileK<Q5_K>, 2, 2>;
  t.by_type[static_cast<int>(DType::kQ6_K)] = run_tiles<TileK<Q6_K>, 2, 2>;
  return t;
}

constexpr MatmulKernelTable kTable = make_table();

}  // namespace

const MatmulKernelTable& matmul_kernels_avx2() { return kTable; }

}  // namespace sn::hal::cpu
