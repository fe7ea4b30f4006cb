// CpuBackend construction and the element-wise, normalization, rotary, KV-cache and
// attention operations (matmul/get_rows live in backend_matmul.cpp). Each op splits its
// work over the pool in units that one thread computes whole (a row, a token, a
// (token, head) pair, a fixed 16-aligned chunk), then calls the kernel of the backend's
// ISA (ops_kernels.h), so no result depends on the thread count or on the other tokens.
// Called by the engine's forward pass from the thread that owns the backend.
// Thread safety: one thread drives a backend (it owns the scratch); kernels fan out over
// the pool and write disjoint outputs.
#include <cmath>

#include "ops_kernels.h"
#include "supernode/base/check.h"
#include "supernode/hal/cpu_backend.h"

namespace sn::hal {
namespace {

// Below this many elements a parallel section costs more than it saves.
constexpr int64_t kSerialElems = 32 * 1024;
// Element-wise chunk per task: a multiple of every SIMD width, so chunk boundaries never
// change which code path computes an element.
constexpr int64_t kChunkElems = 16 * 1024;
// The largest rotated dimension count rope() handles (cos/sin live on the stack).
constexpr int32_t kMaxRopeDims = 1024;

const cpu::OpsKernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return cpu::ops_kernels_avx512();
    case Isa::kAvx2: return cpu::ops_kernels_avx2();
    case Isa::kScalar: break;
  }
  return cpu::ops_kernels_scalar();
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The physical slot (block * block_size + offset) of token t.
int64_t token_slot(const KvLayerView& kv, const TokenPlacement& tp, int64_t t) {
  const int32_t pos = tp.positions[t];
  const int32_t* table = tp.block_tables[tp.seq_of_token[t]];
  return static_cast<int64_t>(table[pos / kv.block_size]) * kv.block_size + pos % kv.block_size;
}

}  // namespace

CpuBackend::CpuBackend(ThreadPool& pool, Isa isa) : pool_(pool), isa_(isa) {
  SN_CHECK(isa_supported(isa)) << "kernel family " << isa_name(isa) << " is not supported by this CPU";
}

void CpuBackend::rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps, float* y) {
  SN_CHECK(dim > 0) << "rms_norm over " << dim << " elements";
  const auto row = kernels_for(isa_).rms_norm_row;
  if (n_rows * dim <= kSerialElems) {
    for (int64_t r = 0; r < n_rows; ++r) row(x + r * dim, weight, dim, eps, y + r * dim);
    return;
  }
  pool_.parallel_for(n_rows, [&](int64_t r, int) { row(x + r * dim, weight, dim, eps, y + r * dim); });
}

void CpuBackend::rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                      const RopeParams& p) {
  SN_CHECK(p.n_dims > 0 && p.n_dims % 2 == 0 && p.n_dims <= head_dim && p.n_dims <= kMaxRopeDims)
      << "rope over " << p.n_dims << " of " << head_dim << " dims";
  const auto rotate = kernels_for(isa_).rope_head;
  const int64_t n_pairs = p.n_dims / 2;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));
  auto token = [&](int64_t t, int) {
    // Angles as llama.cpp's rope cache computes them: theta starts at the position and is
    // multiplied by theta_scale once per pair, in float.
    float cos_buf[kMaxRopeDims / 2];
    float sin_buf[kMaxRopeDims / 2];
    float theta = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < n_pairs; ++i) {
      const float ff = p.freq_factors != nullptr ? p.freq_factors[i] : 1.0f;
      const float angle = p.freq_scale * (theta / ff);
      cos_buf[i] = std::cos(angle);
      sin_buf[i] = std::sin(angle);
      theta *= theta_scale;
    }
    float* xt = x + t * n_heads * head_dim;
    for (int64_t h = 0; h < n_heads; ++h) rotate(xt + h * head_dim, cos_buf, sin_buf, n_pairs, p.neox);
  };
  if (n_tokens * n_heads * head_dim <= kSerialElems) {
    for (int64_t t = 0; t < n_tokens; ++t) token(t, 0);
    return;
  }
  pool_.parallel_for(n_tokens, token);
}

void CpuBackend::silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  const auto fn = kernels_for(isa_).silu_mul;
  if (n <= kSerialElems) {
    fn(gate, up, n, out);
    return;
  }
  pool_.parallel_for((n + kChunkElems - 1) / kChunkElems, [&](int64_t c, int) {
    const int64_t begin = c * kChunkElems;
    fn(gate + begin, up + begin, std::min(kChunkElems, n - begin), out + begin);
  });
}

void CpuBackend::add(const float* a, const float* b, int64_t n, float* out) {
  const auto fn = kernels_for(isa_).add;
  if (n <= kSerialElems) {
    fn(a, b, n, out);
    return;
  }
  pool_.parallel_for((n + kChunkElems - 1) / kChunkElems, [&](int64_t c, int) {
    const int64_t begin = c * kChunkElems;
    fn(a + begin, b + begin, std::min(kChunkElems, n - begin), out + begin);
  });
}

void CpuBackend::add_bias(float* x, const float* bias, int64_t n_rows, int64_t dim) {
  const auto fn = kernels_for(isa_).add;
  if (n_rows * dim <= kSerialElems) {
    for (int64_t r = 0; r < n_rows; ++r) fn(x + r * dim, bias, dim, x + r * dim);
    return;
  }
  pool_.parallel_for(n_rows, [&](int64_t r, int) { fn(x + r * dim, bias, dim, x + r * dim); });
}

void CpuBackend::kv_store(const KvLayerView& kv, const TokenPlacement& tp, const float* k, const float* v) {
  SN_CHECK(kv.block_size > 0 && kv.n_kv_head > 0 && kv.head_dim > 0) << "bad KV layer view";
  const auto convert = kernels_for(isa_).f32_to_f16;
  const int64_t row = static_cast<int64_t>(kv.n_kv_head) * kv.head_dim;
  auto token = [&](int64_t t, int) {
    SN_CHECK(tp.positions[t] >= 0) << "token " << t << " has position " << tp.positions[t];
    const int64_t slot = token_slot(kv, tp, t);
    convert(k + t * row, row, kv.k + slot * row);
    convert(v + t * row, row, kv.v + slot * row);
  };
  if (tp.n_tokens * row <= kSerialElems) {
    for (int64_t t = 0; t < tp.n_tokens; ++t) token(t, 0);
    return;
  }
  pool_.parallel_for(tp.n_tokens, token);
}

void CpuBackend::attention(const KvLayerView& kv, const TokenPlacement& tp, const float* q, int64_t n_head, float scale,
                           float* out) {
  SN_CHECK(kv.n_kv_head > 0 && n_head % kv.n_kv_head == 0)
      << n_head << " query heads cannot share " << kv.n_kv_head << " KV heads";
  if (tp.n_tokens <= 0) return;
  const int64_t d = kv.head_dim;
  const int64_t group = n_head / kv.n_kv_head;
  SN_CHECK(group <= cpu::kMaxAttentionGroup) << group << " query heads per KV head";
  SN_CHECK(d <= 256) << "head size " << d;
  for (int64_t t = 0; t < tp.n_tokens; ++t) {
    SN_CHECK(tp.positions[t] >= 0) << "token " << t << " has position " << tp.positions[t];
  }
  // Runs: consecutive batch tokens of one sequence at consecutive positions (a prefill
  // chunk), at most kMaxAttentionRun long. A run loads each key and value once for all its
  // tokens; every token's result is the same as alone (the kernels' contract).
  std::vector<int64_t>& runs = attention_runs_;
  runs.clear();
  for (int64_t t = 0; t < tp.n_tokens; ++t) {
    const bool extends = !runs.empty() && t - runs.back() < cpu::kMaxAttentionRun &&
                         tp.seq_of_token[t] == tp.seq_of_token[t - 1] && tp.positions[t] == tp.positions[t - 1] + 1;
    if (!extends) runs.push_back(t);
  }
  const int64_t n_runs = static_cast<int64_t>(runs.size());
  runs.push_back(tp.n_tokens);
  // Per thread: accumulators [run length][group][ld].
  const int64_t ld = round_up(d, 16);
  const int64_t per_thread = 2 * cpu::kMaxAttentionRun * group * ld;  // acc, then q_scratch
  const size_t need = static_cast<size_t>(per_thread) * static_cast<size_t>(pool_.size());
  if (attention_scratch_.size() < need) attention_scratch_.resize(need);
  float* scratch = attention_scratch_.data();
  const auto run_fn = kernels_for(isa_).attention_run;

  // One task per (run, KV head): the group's query heads share each K/V load.
  pool_.parallel_for(n_runs * kv.n_kv_head, [&](int64_t task, int thread) {
    const int64_t ri = task / kv.n_kv_head;
    const int64_t g = task % kv.n_kv_head;
    const int64_t t0 = runs[ri];
    cpu::AttentionRunArgs a;
    a.q = q + (t0 * n_head + g * group) * d;
    a.q_stride = n_head * d;
    a.n_tok = runs[ri + 1] - t0;
    a.first_n_pos = static_cast<int64_t>(tp.positions[t0]) + 1;
    a.n_q = group;
    a.k = kv.k;
    a.v = kv.v;
    a.block_table = tp.block_tables[tp.seq_of_token[t0]];
    a.block_size = kv.block_size;
    a.kv_stride = static_cast<int64_t>(kv.n_kv_head) * d;
    a.kv_offset = g * d;
    a.head_dim = d;
    a.scale = scale;
    a.acc = scratch + static_cast<int64_t>(thread) * per_thread;
    a.q_scratch = a.acc + per_thread / 2;
    a.out = out + (t0 * n_head + g * group) * d;
    a.out_stride = n_head * d;
    run_fn(a);
  });
}

}  // namespace sn::hal
