// The CPU compute backend: every operation the transformer forward needs, over host
// memory, run on a ThreadPool with kernels of one ISA family chosen at construction.
// The model code says what to compute through this interface; it does not know which
// ISA runs it. A backend built with Isa::kScalar is the reference every other family is
// tested against.
//
//   hal::ThreadPool pool({.n_threads = 2});
//   hal::CpuBackend be(pool, hal::best_isa());
//   be.prepare(w);                           // once per weight, at load (optional)
//   be.matmul(w, x, n_tokens, y, w.rows);
//
// Numerics follow llama.cpp's CPU backend so our logits track its reference outputs:
// matmul activations are quantized to the weight's "dot type" (Q8_0 for the 32-element
// block types, Q8_K for the K types, F16 for F16 weights, BF16 for BF16 weights, F32 for
// F32), and the KV cache holds F16.
//
// Batch invariance (a hard rule, ../shared/DESIGN.md): the result for one token never
// depends on which other tokens are in the call, on n_tokens, or on the thread count.
// Every reduction runs in a fixed order per output element.
//
// Thread safety: one thread drives a backend (it owns scratch memory); the kernels fan
// out over the pool internally. Kernels do not allocate except to grow scratch.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "supernode/hal/cpu_features.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/thread_pool.h"

namespace sn::hal {

// A 2-D weight in GGUF order: `rows` rows of `cols` elements of `type`; row r starts at
// data + r * dtype_row_bytes(type, cols). REQUIRES: cols is a multiple of the block size.
struct WeightView {
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
};

struct RopeParams {
  int32_t n_dims = 0;                   // rotated dimensions per head (<= head_dim)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // linear position scaling (1 = none)
  bool neox = false;                    // false: rotate adjacent pairs (2i, 2i+1), llama;
                                        // true: rotate (i, i + n_dims/2), NeoX/qwen
  const float* freq_factors = nullptr;  // optional [n_dims/2] divisors of each frequency (llama3 rope_freqs)
};

// One layer's paged KV storage, F16. Slot s of physical block b for KV head h starts at
// k + ((b * block_size + s) * n_kv_head + h) * head_dim (same for v).
struct KvLayerView {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int32_t block_size = 16;
  int32_t n_kv_head = 0;
  int32_t head_dim = 0;
};

// Where each token of a batch lives. Token t belongs to sequence seq_of_token[t] and sits
// at position positions[t] of it; block_tables[seq][i] is the physical block holding that
// sequence's positions [i * block_size, (i + 1) * block_size).
struct TokenPlacement {
  int64_t n_tokens = 0;
  const int32_t* positions = nullptr;
  const int32_t* seq_of_token = nullptr;
  const int32_t* const* block_tables = nullptr;
};

class CpuBackend {
 public:
  // REQUIRES: isa_supported(isa). `pool` must outlive the backend.
  CpuBackend(ThreadPool& pool, Isa isa);

  [[nodiscard]] Isa isa() const { return isa_; }
  [[nodiscard]] ThreadPool& pool() { return pool_; }

  // Repacks w once into the layout this backend's kernels stream fastest (backend-owned
  // memory, keyed by w.data); later matmul calls on the same weight use it automatically.
  // A no-op where the ISA or the weight type has no packed layout, or w is already prepared.
  // Numerics are those of matmul (the same integer block sums and llama.cpp's activation
  // types; only float accumulation order differs) and batch invariance holds as before.
  // Uses the pool; allocates. REQUIRES: w.data stays valid and unchanged while the backend
  // may see it (a prepared weight whose first and last bytes changed is no longer used).
  void prepare(const WeightView& w);

  // y[t * y_stride + r] = sum_c W[r][c] * x[t * w.cols + c], t < n_tokens, r < w.rows.
  // REQUIRES: y_stride >= w.rows; x and y do not overlap.
  void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t y_stride);

  // out[i * w.cols + c] = W[ids[i]][c] as f32. REQUIRES: 0 <= ids[i] < w.rows.
  void get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out);

  // Per row: y = x / sqrt(mean(x^2) + eps) * weight (weight may be null). In place allowed.
  void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y);

  // Rotates the first p.n_dims dims of each head of x [n_tokens][n_heads][head_dim] by
  // positions[t], in place.
  void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
            const RopeParams& p);

  // out = silu(gate) * up, elementwise over n. In place (out == gate) allowed.
  void silu_mul(const float* gate, const float* up, int64_t n, float* out);

  // out = a + b elementwise. In place allowed.
  void add(const float* a, const float* b, int64_t n, float* out);

  // x[r][c] += bias[c] for r < n_rows, c < dim.
  void add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim);

  // Writes k and v ([n_tokens][n_kv_head * head_dim], f32) into the cache as F16 at each
  // token's slot.
  void kv_store(const KvLayerView& kv, const TokenPlacement& tp, const float* k, const float* v);

  // Causal attention: token t's query heads attend to positions [0, positions[t]] of its
  // sequence (already stored), with GQA (query head h reads KV head h / (n_head / n_kv_head)).
  // q and out: [n_tokens][n_head * head_dim]. scale is usually 1/sqrt(head_dim).
  void attention(const KvLayerView& kv, const TokenPlacement& tp, const float* q, int64_t n_head,
                 float scale, float* out);

 private:
  // A weight repacked by prepare().
  struct PackedWeight {
    DType type = DType::kF32;
    int64_t rows = 0, cols = 0;
    int64_t group_bytes = 0;      // bytes per group of interleaved rows
    uint64_t fingerprint = 0;     // of the source's first and last bytes
    struct FreeBytes {
      void operator()(uint8_t* p) const;
    };
    std::unique_ptr<uint8_t[], FreeBytes> bytes;  // 2 MiB aligned, transparent huge pages advised
  };
  [[nodiscard]] const PackedWeight* find_packed(const WeightView& w) const;

  ThreadPool& pool_;
  Isa isa_;
  std::unordered_map<const void*, PackedWeight> packed_;
  std::vector<uint8_t> matmul_scratch_;     // quantized activations (matmul)
  std::vector<float> attention_scratch_;    // accumulators per thread (attention)
  std::vector<int64_t> attention_runs_;     // first token of each run of one sequence (attention)
};

}  // namespace sn::hal
