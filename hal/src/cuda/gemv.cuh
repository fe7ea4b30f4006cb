// The dequantizing GEMV of the CUDA backend (decode: 1..8 tokens), one template driver
// and one traits struct per weight type; each gemv_<type>.cu instantiates its own.
//
// Shape of the kernel: a grid of 256-thread blocks, all resident at once, sized so every
// warp gets the same number of row groups (one row for one token, two rows for more).
// Each block first copies the call's quantized activations into shared memory, permuted
// so that each lane's activations for one weight unit are two conflict-free 16-byte
// reads; then each warp takes its row groups in turn. A lane reads its rows' units lane,
// lane + 32, ... with 16-byte loads (a warp reads 512 contiguous bytes of a quant plane per
// load), all units of a step in flight before the first is used, and accumulates one float
// per row and token; the warp's butterfly sum gives each output. Weight bytes are read
// once per call for all its tokens. With programmatic dependent launch (sm_90) the first
// weights are requested while the kernel that quantizes the activations still runs.
//
// Numerics: each unit's integer dot products (dp4a) are exactly the CPU reference's
// integer block sums; the float terms (weight scale x activation scale) x sum are those
// of cpu::vec_dot_ref (split per 16 elements for the K types) and are added in a
// different but fixed order. A token's result depends only on its own activations.
// Thread safety: see kernels.h.
#pragma once

#include <algorithm>
#include <atomic>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace sn::hal::cuda::gemv {

inline constexpr int kThreads = 256;
inline constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ uint4 ldg16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint4 lds16(const uint8_t* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ float ldg_f16(const uint8_t* p) {
  return __half2float(__ldg(reinterpret_cast<const __half*>(p)));
}

__device__ __forceinline__ int dot16(uint4 w, uint4 a, int acc) {
  acc = __dp4a(static_cast<int>(w.x), static_cast<int>(a.x), acc);
  acc = __dp4a(static_cast<int>(w.y), static_cast<int>(a.y), acc);
  acc = __dp4a(static_cast<int>(w.z), static_cast<int>(a.z), acc);
  return __dp4a(static_cast<int>(w.w), static_cast<int>(a.w), acc);
}
__device__ __forceinline__ uint4 lo_nibbles(uint4 q) {
  return make_uint4(q.x & 0x0F0F0F0Fu, q.y & 0x0F0F0F0Fu, q.z & 0x0F0F0F0Fu, q.w & 0x0F0F0F0Fu);
}
__device__ __forceinline__ uint4 hi_nibbles(uint4 q) {
  return make_uint4((q.x >> 4) & 0x0F0F0F0Fu, (q.y >> 4) & 0x0F0F0F0Fu, (q.z >> 4) & 0x0F0F0F0Fu,
                    (q.w >> 4) & 0x0F0F0F0Fu);
}

// ---- activations in shared memory ------------------------------------------------------
// Q8_0 (for q4_0, q8_0), per token: lo[nb][16] hi[nb][16] (elements 0..15 and 16..31 of
// each 32-block), d f32[nb], s i32[nb].
struct SmemQ8_0 {
  int nb;
  __device__ explicit SmemQ8_0(int64_t cols) : nb(static_cast<int>(cols / 32)) {}
  __device__ int64_t token_bytes() const { return round_up(static_cast<int64_t>(nb) * 40, 16); }
  __device__ void fill(uint8_t* smem, const DevAct& a, int n_tokens) const {
    for (int i = threadIdx.x; i < n_tokens * nb; i += blockDim.x) {
      const int t = i / nb, b = i % nb;
      const uint8_t* rec = a.base + t * a.token_stride;
      uint8_t* s = smem + t * token_bytes();
      *reinterpret_cast<uint4*>(s + b * 16) = ldg16(rec + a.qs_offset + b * 32);
      *reinterpret_cast<uint4*>(s + nb * 16 + b * 16) = ldg16(rec + a.qs_offset + b * 32 + 16);
      reinterpret_cast<float*>(s + nb * 32)[b] = reinterpret_cast<const float*>(rec + a.d_offset)[b];
      reinterpret_cast<int*>(s + nb * 36)[b] = reinterpret_cast<const int*>(rec + a.s_offset)[b];
    }
  }
};

// Q8_K (for q4_K, q6_K), per token: 8 units of 32 elements per 256-block, unit k holding
// two runs of 16 activations (where depends on the weight type: RunLo(k) and + kHiDelta);
// lo[units][16] hi[units][16], sums int2[units] (of each run), d f32[nb].
template <int (*RunLo)(int), int kHiDelta>
struct SmemQ8_K {
  int nb, units;
  __device__ explicit SmemQ8_K(int64_t cols) : nb(static_cast<int>(cols / 256)), units(nb * 8) {}
  __device__ int64_t token_bytes() const { return round_up(static_cast<int64_t>(units) * 40 + nb * 4, 16); }
  __device__ void fill(uint8_t* smem, const DevAct& a, int n_tokens) const {
    for (int i = threadIdx.x; i < n_tokens * units; i += blockDim.x) {
      const int t = i / units, u = i % units;
      const int lo = (u / 8) * 256 + RunLo(u % 8), hi = lo + kHiDelta;
      const uint8_t* rec = a.base + t * a.token_stride;
      uint8_t* s = smem + t * token_bytes();
      *reinterpret_cast<uint4*>(s + u * 16) = ldg16(rec + a.qs_offset + lo);
      *reinterpret_cast<uint4*>(s + units * 16 + u * 16) = ldg16(rec + a.qs_offset + hi);
      const int* sums = reinterpret_cast<const int*>(rec + a.s_offset);
      reinterpret_cast<int2*>(s + units * 32)[u] = make_int2(sums[lo / 16], sums[hi / 16]);
      if (u % 8 == 0) reinterpret_cast<float*>(s + units * 40)[u / 8] = reinterpret_cast<const float*>(rec + a.d_offset)[u / 8];
    }
  }
};

// f32 / f16 activations: the row as is, zero-padded to whole 16-byte units.
template <int kElemBytes>
struct SmemPlain {
  int64_t cols;
  __device__ explicit SmemPlain(int64_t c) : cols(c) {}
  __device__ int64_t token_bytes() const { return round_up(cols * kElemBytes, 16); }
  __device__ void fill(uint8_t* smem, const DevAct& a, int n_tokens) const {
    const int64_t per = token_bytes() / kElemBytes;
    for (int64_t i = threadIdx.x; i < n_tokens * per; i += blockDim.x) {
      const int64_t t = i / per, c = i % per;
      uint8_t* s = smem + t * token_bytes();
      const uint8_t* rec = a.base + t * a.token_stride;
      if constexpr (kElemBytes == 4) {
        reinterpret_cast<float*>(s)[c] = c < cols ? reinterpret_cast<const float*>(rec)[c] : 0.0f;
      } else {
        reinterpret_cast<__half*>(s)[c] = c < cols ? reinterpret_cast<const __half*>(rec + a.qs_offset)[c] : __half();
      }
    }
  }
};

// ---- weight types --------------------------------------------------------------------
// Each traits struct: Smem (activation layout), kUnroll (units a lane loads per row and
// step: about 64 bytes, fewer for fat units so registers do not spill), n_units(w), Unit,
// load(row planes, u), and dot<B, R>(units of R rows, u, smem layout, smem, acc[R][B]),
// which reads each token's activations for unit u from shared memory once for all R rows.

struct F32 {
  using Smem = SmemPlain<4>;
  static constexpr int kUnroll = 4;
  static constexpr int kUnrollOneToken = 4;  // one token needs fewer registers
  struct Unit {
    float4 w;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.pitch[0] / 16); }
  __device__ static Unit load(const uint8_t* const* p, int u) {
    const uint4 v = ldg16(p[0] + u * 16);
    return {make_float4(__uint_as_float(v.x), __uint_as_float(v.y), __uint_as_float(v.z), __uint_as_float(v.w))};
  }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const float4 a = *reinterpret_cast<const float4*>(smem + b * sm.token_bytes() + u * 16);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        acc[r][b] += w[r].w.x * a.x;
        acc[r][b] += w[r].w.y * a.y;
        acc[r][b] += w[r].w.z * a.z;
        acc[r][b] += w[r].w.w * a.w;
      }
    }
  }
};

struct F16 {
  using Smem = SmemPlain<2>;
  static constexpr int kUnroll = 4;
  static constexpr int kUnrollOneToken = 4;  // one token needs fewer registers
  struct Unit {
    uint4 w;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.pitch[0] / 16); }
  __device__ static Unit load(const uint8_t* const* p, int u) { return {ldg16(p[0] + u * 16)}; }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const uint4 av = lds16(smem + b * sm.token_bytes() + u * 16);
      const uint32_t aa[4] = {av.x, av.y, av.z, av.w};
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint32_t wv[4] = {w[r].w.x, w[r].w.y, w[r].w.z, w[r].w.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 wf = __half22float2(*reinterpret_cast<const __half2*>(&wv[i]));
          const float2 af = __half22float2(*reinterpret_cast<const __half2*>(&aa[i]));
          acc[r][b] += wf.x * af.x;
          acc[r][b] += wf.y * af.y;
        }
      }
    }
  }
};

struct Q4_0 {
  using Smem = SmemQ8_0;
  static constexpr int kUnroll = 4;
  static constexpr int kUnrollOneToken = 4;  // one token needs fewer registers
  struct Unit {
    uint4 q;
    float d;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.cols / 32); }
  __device__ static Unit load(const uint8_t* const* p, int u) { return {ldg16(p[0] + u * 16), ldg_f16(p[1] + u * 2)}; }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
    uint4 lo[R], hi[R];
#pragma unroll
    for (int r = 0; r < R; ++r) lo[r] = lo_nibbles(w[r].q), hi[r] = hi_nibbles(w[r].q);
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const uint8_t* s = smem + b * sm.token_bytes();
      const uint4 al = lds16(s + u * 16), ah = lds16(s + sm.nb * 16 + u * 16);
      const int off = 8 * reinterpret_cast<const int*>(s + sm.nb * 36)[u];
      const float da = reinterpret_cast<const float*>(s + sm.nb * 32)[u];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int dot = dot16(hi[r], ah, dot16(lo[r], al, 0)) - off;
        acc[r][b] += (w[r].d * da) * static_cast<float>(dot);
      }
    }
  }
};

struct Q8_0 {
  using Smem = SmemQ8_0;
  static constexpr int kUnroll = 2;
  static constexpr int kUnrollOneToken = 2;  // 4 measured no faster on H100
  struct Unit {
    uint4 q0, q1;
    float d;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.cols / 32); }
  __device__ static Unit load(const uint8_t* const* p, int u) {
    return {ldg16(p[0] + u * 32), ldg16(p[0] + u * 32 + 16), ldg_f16(p[1] + u * 2)};
  }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const uint8_t* s = smem + b * sm.token_bytes();
      const uint4 al = lds16(s + u * 16), ah = lds16(s + sm.nb * 16 + u * 16);
      const float da = reinterpret_cast<const float*>(s + sm.nb * 32)[u];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int dot = dot16(w[r].q1, ah, dot16(w[r].q0, al, 0));
        acc[r][b] += (w[r].d * da) * static_cast<float>(dot);
      }
    }
  }
};

// Byte i (0..11) of a K block's packed scales held in three words.
__device__ __forceinline__ int scale_byte(uint4 meta, int i) {
  const uint32_t word = i < 4 ? meta.y : (i < 8 ? meta.z : meta.w);
  return static_cast<int>((word >> (8 * (i & 3))) & 0xFFu);
}
// The 6-bit (scale, min) pair j of a q4_K block (cpu::k_scale_min).
__device__ __forceinline__ void k_scale_min(uint4 meta, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scale_byte(meta, j) & 63;
    *m = scale_byte(meta, j + 4) & 63;
  } else {
    *sc = (scale_byte(meta, j + 4) & 0xF) | ((scale_byte(meta, j - 4) >> 6) << 4);
    *m = (scale_byte(meta, j + 4) >> 4) | ((scale_byte(meta, j) >> 6) << 4);
  }
}

// q4_K unit k (0..7) of a 256-block: qs bytes [16k, 16k + 16): low nibbles are elements
// 64(k/2) + 16(k%2) + i of sub-block 2(k/2), high nibbles the same + 32 (sub-block + 1).
__device__ __forceinline__ int q4k_run_lo(int k) { return 64 * (k / 2) + 16 * (k % 2); }
// q6_K unit k: ql bytes [16k, 16k + 16) of half k/4: low nibbles are elements
// 128(k/4) + 32((k%4)/2) + 16(k%2) + i, high nibbles the same + 64.
__device__ __forceinline__ int q6k_run_lo(int k) { return 128 * (k / 4) + 32 * ((k % 4) / 2) + 16 * (k % 2); }

struct Q4_K {
  using Smem = SmemQ8_K<q4k_run_lo, 32>;
  static constexpr int kUnroll = 2;
  static constexpr int kUnrollOneToken = 2;  // 4 measured no faster on H100
  struct Unit {
    uint4 q, meta;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.cols / 32); }
  __device__ static Unit load(const uint8_t* const* p, int u) { return {ldg16(p[0] + u * 16), ldg16(p[1] + (u / 8) * 16)}; }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
    const int pair = (u % 8) / 2;
    int sc_lo[R], m_lo[R], sc_hi[R], m_hi[R];
    float d[R], dmin[R];
    uint4 lo[R], hi[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      k_scale_min(w[r].meta, 2 * pair, &sc_lo[r], &m_lo[r]);
      k_scale_min(w[r].meta, 2 * pair + 1, &sc_hi[r], &m_hi[r]);
      d[r] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[r].meta.x & 0xFFFFu)));
      dmin[r] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[r].meta.x >> 16)));
      lo[r] = lo_nibbles(w[r].q), hi[r] = hi_nibbles(w[r].q);
    }
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const uint8_t* s = smem + b * sm.token_bytes();
      const uint4 al = lds16(s + u * 16), ah = lds16(s + sm.units * 16 + u * 16);
      const int2 sums = reinterpret_cast<const int2*>(s + sm.units * 32)[u];
      const float da = reinterpret_cast<const float*>(s + sm.units * 40)[u / 8];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int s1 = sc_lo[r] * dot16(lo[r], al, 0) + sc_hi[r] * dot16(hi[r], ah, 0);
        const int s2 = m_lo[r] * sums.x + m_hi[r] * sums.y;
        acc[r][b] += (d[r] * da) * static_cast<float>(s1);
        acc[r][b] += -(dmin[r] * da) * static_cast<float>(s2);
      }
    }
  }
};

struct Q6_K {
  using Smem = SmemQ8_K<q6k_run_lo, 64>;
  static constexpr int kUnroll = 2;
  static constexpr int kUnrollOneToken = 2;  // one token needs fewer registers
  struct Unit {
    uint4 ql, qh;
    int sc_lo, sc_hi;
    float d;
  };
  __device__ static int n_units(const DevWeight& w) { return static_cast<int>(w.cols / 32); }
  __device__ static Unit load(const uint8_t* const* p, int u) {
    const int sb = u / 8, k = u % 8;
    const int g_lo = 8 * (k / 4) + 2 * ((k % 4) / 2) + (k % 2);
    const auto* sc = reinterpret_cast<const int8_t*>(p[2] + sb * 16);
    return {ldg16(p[0] + u * 16), ldg16(p[1] + sb * 64 + 32 * (k / 4) + 16 * (k % 2)), __ldg(sc + g_lo),
            __ldg(sc + g_lo + 4), ldg_f16(p[3] + sb * 2)};
  }
  template <int B, int R>
  __device__ static void dot(const Unit (&w)[R], int u, const Smem& sm, const uint8_t* smem, float (&acc)[R][B]) {
    const int shift = 2 * ((u % 8 % 4) / 2);
    uint4 lo[R], hi[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint32_t ql[4] = {w[r].ql.x, w[r].ql.y, w[r].ql.z, w[r].ql.w};
      const uint32_t qh[4] = {w[r].qh.x, w[r].qh.y, w[r].qh.z, w[r].qh.w};
      uint32_t vlo[4], vhi[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        vlo[i] = (ql[i] & 0x0F0F0F0Fu) | (((qh[i] >> shift) & 0x03030303u) << 4);
        vhi[i] = ((ql[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> (shift + 4)) & 0x03030303u) << 4);
      }
      lo[r] = make_uint4(vlo[0], vlo[1], vlo[2], vlo[3]);
      hi[r] = make_uint4(vhi[0], vhi[1], vhi[2], vhi[3]);
    }
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const uint8_t* s = smem + b * sm.token_bytes();
      const uint4 al = lds16(s + u * 16), ah = lds16(s + sm.units * 16 + u * 16);
      const int2 sums = reinterpret_cast<const int2*>(s + sm.units * 32)[u];
      const float da = reinterpret_cast<const float*>(s + sm.units * 40)[u / 8];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int isum = w[r].sc_lo * (dot16(lo[r], al, 0) - 32 * sums.x) + w[r].sc_hi * (dot16(hi[r], ah, 0) - 32 * sums.y);
        acc[r][b] += (w[r].d * da) * static_cast<float>(isum);
      }
    }
  }
};

// ---- the driver ----------------------------------------------------------------------

// Rows a warp computes together: one for a single token (the finest split of the work,
// so warps finish together), two for more tokens (each activation read from shared
// memory serves both rows, halving the shared-memory traffic that bounds batched GEMV).
constexpr int rows_per_warp(int b) { return b == 1 ? 1 : 2; }

// Minimum resident blocks per SM the compiler must allow (it caps registers to fit):
// small batches need few registers, so more warps keep more loads in flight.
constexpr int min_blocks(int b) { return b == 1 ? 4 : 2; }

// A warp takes R = rows_per_warp(B) rows at a time (row0 .. row0 + R - 1; then
// row0 + stride, ...) and walks them in steps of 32 * kUnroll units, loading all of a
// step's units of all R rows before computing any. With programmatic dependent launch
// (sm_90), the first step's weights are requested before waiting for the kernel that
// wrote the activations. (Double-buffering steps across rows was tried: the extra
// registers cost more occupancy than the overlap gained, on H100.)
template <class T, int B>
__global__ void __launch_bounds__(kThreads, min_blocks(B)) gemv_kernel(GemvArgs a) {
  extern __shared__ uint4 smem_words[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(smem_words);
  constexpr int U = B == 1 ? T::kUnrollOneToken : T::kUnroll, R = rows_per_warp(B);
  const typename T::Smem sm(a.w.cols);
  const int lane = threadIdx.x % 32;
  const int n_units = T::n_units(a.w);
  const int64_t rows = a.w.rows;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarps * R;
  int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32) * R;

  const uint8_t* p[R][kMaxPlanes];
  auto set_rows = [&](int64_t r0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = r0 + r < rows ? r0 + r : rows - 1;  // a missing last row re-reads one
#pragma unroll
      for (int i = 0; i < kMaxPlanes; ++i) p[r][i] = a.w.plane[i] + row * a.w.pitch[i];
    }
  };
  typename T::Unit w[U][R];
  auto load_step = [&](int u0) {
#pragma unroll
    for (int i = 0; i < U; ++i) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (u0 + 32 * i < n_units) w[i][r] = T::load(p[r], u0 + 32 * i);
      }
    }
  };

  const bool active = row0 < rows;
  if (active) {
    set_rows(row0);
    load_step(lane);
  }
  pdl_wait();  // the activations come from the previous kernel
  pdl_launch_dependents();
  sm.fill(smem, a.act, B);
  __syncthreads();
  if (!active) return;

  bool preloaded = true;
  for (; row0 < rows; row0 += stride) {
    if (!preloaded) set_rows(row0);
    float acc[R][B];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;
    }
    for (int u0 = lane; u0 < n_units; u0 += 32 * U) {
      if (!preloaded) load_step(u0);
      preloaded = false;
#pragma unroll
      for (int i = 0; i < U; ++i) {
        if (u0 + 32 * i < n_units) T::template dot<B, R>(w[i], u0 + 32 * i, sm, smem, acc);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int b = 0; b < B; ++b) {
        const float sum = warp_sum(acc[r][b]);
        if (lane == b && row0 + r < rows) a.y[b * a.y_stride + row0 + r] = sum;
      }
    }
  }
}

// Blocks per SM of one kernel at one shared-memory size, asked of the runtime once per
// instantiation and size (the query costs microseconds; decode launches hundreds).
template <class T, int B>
int blocks_per_sm(int64_t smem) {
  static std::atomic<int64_t> cached_smem{-1};
  static std::atomic<int> cached_blocks{0};
  static std::atomic<int64_t> smem_limit{48 * 1024};  // the kernel's dynamic limit so far (only raised)
  if (cached_smem.load(std::memory_order_acquire) == smem) return cached_blocks.load(std::memory_order_relaxed);
  auto kernel = gemv_kernel<T, B>;
  if (smem > smem_limit.load()) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess) {
      return 0;
    }
    smem_limit.store(smem);
  }
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, static_cast<size_t>(smem)) != cudaSuccess) {
    return 0;
  }
  cached_blocks.store(per_sm, std::memory_order_relaxed);
  cached_smem.store(smem, std::memory_order_release);
  return per_sm;
}

template <class T, int B>
cudaError_t launch_b(const GemvArgs& a, cudaStream_t stream) {
  const int64_t smem = gemv_token_smem_bytes(a.w.type, a.w.cols) * B;
  const int per_sm = blocks_per_sm<T, B>(smem);
  if (per_sm < 1) {
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : cudaErrorInvalidConfiguration;
  }
  // Balance: with at most `most` warps resident, each warp takes k = ceil(groups / most)
  // row groups; use only as many warps as that needs, so that all take k (or k - 1).
  const int64_t groups = (a.w.rows + rows_per_warp(B) - 1) / rows_per_warp(B);
  const int64_t most = static_cast<int64_t>(per_sm) * a.sm_count * kWarps;
  const int64_t k = (groups + most - 1) / most;
  const int64_t warps = (groups + k - 1) / k;
  const int grid = static_cast<int>((warps + kWarps - 1) / kWarps);
  return launch_kernel(gemv_kernel<T, B>, grid, kThreads, static_cast<size_t>(smem), stream, a.pdl, a);
}

template <class T>
cudaError_t launch(const GemvArgs& a, cudaStream_t stream) {
  switch (a.n_tokens) {
    case 1: return launch_b<T, 1>(a, stream);
    case 2: return launch_b<T, 2>(a, stream);
    case 3: return launch_b<T, 3>(a, stream);
    case 4: return launch_b<T, 4>(a, stream);
    case 5: return launch_b<T, 5>(a, stream);
    case 6: return launch_b<T, 6>(a, stream);
    case 7: return launch_b<T, 7>(a, stream);
    case 8: return launch_b<T, 8>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace sn::hal::cuda::gemv
