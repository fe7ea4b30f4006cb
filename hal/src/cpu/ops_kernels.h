// The per-ISA kernel table for CpuBackend's non-matmul ops: one row/head/chunk of work
// per call, no threading, no allocation. backend.cpp splits the work over the pool and
// calls the table of the backend's ISA.
//
// Each ISA's kernels live in their own translation unit (ops_scalar.cpp, ops_avx2.cpp,
// ops_avx512.cpp), compiled with that ISA's flags, everything inside an anonymous
// namespace and only the table getter exported. This header therefore holds plain C-like
// declarations only: no inline functions and no templates, so no AVX-512 code can be
// ODR-merged into a baseline path.
//
// Numerics follow llama.cpp's CPU backend (see cpu_backend.h). A kernel's result for one
// element/row/head must depend only on that element/row/head's inputs (batch invariance):
// SIMD kernels treat tails so that an element's value does not depend on where it falls
// in a call.
// Thread safety: kernels are pure functions of their arguments; any number of threads
// may call them on disjoint outputs.
#pragma once

#include <cstdint>

namespace sn::hal::cpu {

// One token's attention for the query heads that share one KV head (GQA group), over
// the token's sequence's paged F16 cache, with llama.cpp's flash-attention numerics: the
// query is rounded to f16, keys are visited in position order with an online softmax
// (running max M and sum S), and each head's output accumulator is an f16 vector that is
// rescaled when M grows and receives v * exp(s - M) with one f16 rounding per step.
struct AttentionGroupArgs {
  const float* q;              // [n_q][head_dim] (the kernel rounds it to f16, as llama.cpp converts Q to K's type)
  int64_t n_q;                 // query heads in the group (<= kMaxAttentionGroup)
  const uint16_t* k;           // KvLayerView::k
  const uint16_t* v;           // KvLayerView::v
  const int32_t* block_table;  // the token's sequence's physical blocks
  int64_t n_pos;               // attend to positions [0, n_pos)
  int64_t block_size;
  int64_t kv_stride;           // elements between consecutive slots (n_kv_head * head_dim)
  int64_t kv_offset;           // kv_head * head_dim
  int64_t head_dim;
  float scale;
  float* acc;                  // scratch [n_q][head_dim rounded up to 16]
  float* out;                  // [n_q][head_dim]
};

inline constexpr int64_t kMaxAttentionGroup = 64;

// Consecutive tokens of one sequence (positions p, p+1, ...) for one GQA group. Token i's
// result is exactly what it would be in a run of its own (batch invariance); a run only lets
// the kernel load each key and value once for all its tokens. The scalar and AVX2 families
// compute it token by token with their AttentionGroupArgs kernel.
struct AttentionRunArgs {
  const float* q;              // token i's group of query heads at q + i * q_stride
  int64_t q_stride;
  int64_t n_tok;               // <= kMaxAttentionRun
  int64_t first_n_pos;         // token i attends to positions [0, first_n_pos + i)
  int64_t n_q;
  const uint16_t* k;
  const uint16_t* v;
  const int32_t* block_table;
  int64_t block_size;
  int64_t kv_stride;
  int64_t kv_offset;
  int64_t head_dim;
  float scale;
  float* acc;                  // scratch [n_tok][n_q][head_dim rounded up to 16]
  float* q_scratch;            // the same size again, for kernels that want it
  float* out;                  // token i's group output at out + i * out_stride
  int64_t out_stride;
};

inline constexpr int64_t kMaxAttentionRun = 16;

// The run kernel of families without a specialized one: token by token. `static`, so each
// ISA's translation unit keeps its own copy (no ODR merging across ISA flags).
static inline void attention_run_by_token(void (*group)(const AttentionGroupArgs&), const AttentionRunArgs& r) {
  for (int64_t i = 0; i < r.n_tok; ++i) {
    AttentionGroupArgs a;
    a.q = r.q + i * r.q_stride;
    a.n_q = r.n_q;
    a.k = r.k;
    a.v = r.v;
    a.block_table = r.block_table;
    a.n_pos = r.first_n_pos + i;
    a.block_size = r.block_size;
    a.kv_stride = r.kv_stride;
    a.kv_offset = r.kv_offset;
    a.head_dim = r.head_dim;
    a.scale = r.scale;
    a.acc = r.acc;
    a.out = r.out + i * r.out_stride;
    group(a);
  }
}

struct OpsKernels {
  // y = x * (1/sqrtf(mean(x^2) + eps)) [* w]; sum of squares accumulated in double.
  void (*rms_norm_row)(const float* x, const float* w, int64_t dim, float eps, float* y);
  // Rotates one head in place by the angles whose cos/sin are given per pair. Normal mode
  // (neox false): pair i is (x[2i], x[2i+1]); NeoX: (x[i], x[i + n_pairs]).
  void (*rope_head)(float* x, const float* cos, const float* sin, int64_t n_pairs, bool neox);
  // out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]. out may equal gate or up.
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // out[i] = a[i] + b[i]. out may equal a or b.
  void (*add)(const float* a, const float* b, int64_t n, float* out);
  // dst[i] = f16(src[i]), round to nearest even.
  void (*f32_to_f16)(const float* src, int64_t n, uint16_t* dst);
  void (*attention_run)(const AttentionRunArgs& args);
};

// REQUIRES (avx2/avx512): the CPU supports the family (isa_supported()).
const OpsKernels& ops_kernels_scalar();
const OpsKernels& ops_kernels_avx2();
const OpsKernels& ops_kernels_avx512();

}  // namespace sn::hal::cpu
