// CpuBackend's non-matmul ops at TinyLlama shapes (dim 2048, 32 heads, 4 KV heads,
// head_dim 64) per ISA family, plus the memory read bandwidth the roofline uses:
// rms_norm and rope over a decode token and a 128-token prefill chunk, and decode
// attention over a 2048-token context in 16-slot paged blocks.
// Thread safety: single-threaded driver; each benchmark owns its pool and backend.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "supernode/hal/bandwidth.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/fp16.h"

namespace {

using sn::hal::Isa;

constexpr int64_t kDim = 2048;
constexpr int64_t kHeads = 32;
constexpr int32_t kKvHeads = 4;
constexpr int32_t kHeadDim = 64;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Skips (with a message) when the CPU lacks the family.
bool usable(benchmark::State& state, Isa isa) {
  if (sn::hal::isa_supported(isa)) return true;
  state.SkipWithError("CPU lacks this ISA family");
  return false;
}

void BM_RmsNorm(benchmark::State& state) {
  const Isa isa = static_cast<Isa>(state.range(0));
  if (!usable(state, isa)) return;
  const int64_t rows = state.range(1);
  sn::hal::ThreadPool pool({.n_threads = 2});
  sn::hal::CpuBackend be(pool, isa);
  const auto x = random_floats(static_cast<size_t>(rows * kDim), 1);
  const auto w = random_floats(static_cast<size_t>(kDim), 2);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    be.rms_norm(x.data(), w.data(), rows, kDim, 1e-5f, y.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(sn::hal::isa_name(isa));
  state.SetBytesProcessed(state.iterations() * rows * kDim * 8);
}
BENCHMARK(BM_RmsNorm)->ArgsProduct({{0, 1, 2}, {1, 128}})->UseRealTime();

void BM_Rope(benchmark::State& state) {
  const Isa isa = static_cast<Isa>(state.range(0));
  if (!usable(state, isa)) return;
  const int64_t tokens = state.range(1);
  sn::hal::ThreadPool pool({.n_threads = 2});
  sn::hal::CpuBackend be(pool, isa);
  auto x = random_floats(static_cast<size_t>(tokens * kHeads * kHeadDim), 3);
  std::vector<int32_t> pos(static_cast<size_t>(tokens));
  std::iota(pos.begin(), pos.end(), 1000);
  sn::hal::RopeParams p;
  p.n_dims = kHeadDim;
  for (auto _ : state) {
    be.rope(x.data(), tokens, kHeads, kHeadDim, pos.data(), p);
    benchmark::ClobberMemory();
  }
  state.SetLabel(sn::hal::isa_name(isa));
}
BENCHMARK(BM_Rope)->ArgsProduct({{0, 1, 2}, {1, 128}})->UseRealTime();

// One sequence at 2,048 tokens of context: `tokens` (range 2) new tokens attend to it, 1 as
// in decoding, 12 as a short suffix after a prefix-cache hit.
void BM_AttentionDecode(benchmark::State& state) {
  const Isa isa = static_cast<Isa>(state.range(0));
  if (!usable(state, isa)) return;
  const int threads = static_cast<int>(state.range(1));
  const int32_t n_tok = static_cast<int32_t>(state.range(2));
  const int32_t ctx = 2048, bs = 16;
  const int32_t n_blocks = ctx / bs;
  const size_t row = static_cast<size_t>(kKvHeads * kHeadDim);
  std::vector<uint16_t> k(static_cast<size_t>(ctx) * row), v(k.size());
  const auto kf = random_floats(k.size(), 4), vf = random_floats(v.size(), 5);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = sn::hal::fp32_to_fp16(kf[i]);
    v[i] = sn::hal::fp32_to_fp16(vf[i]);
  }
  std::vector<int32_t> table(static_cast<size_t>(n_blocks));
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937(6));
  const int32_t* tables[] = {table.data()};
  std::vector<int32_t> positions(static_cast<size_t>(n_tok)), seqs(static_cast<size_t>(n_tok), 0);
  std::iota(positions.begin(), positions.end(), ctx - n_tok);
  sn::hal::KvLayerView kv{k.data(), v.data(), bs, kKvHeads, kHeadDim};
  sn::hal::TokenPlacement tp{n_tok, positions.data(), seqs.data(), tables};
  const auto q = random_floats(static_cast<size_t>(n_tok * kHeads * kHeadDim), 7);
  std::vector<float> out(q.size());
  sn::hal::ThreadPool pool({.n_threads = threads});
  sn::hal::CpuBackend be(pool, isa);
  for (auto _ : state) {
    be.attention(kv, tp, q.data(), kHeads, 0.125f, out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(sn::hal::isa_name(isa));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(2 * k.size() * sizeof(uint16_t)));
}
BENCHMARK(BM_AttentionDecode)->ArgsProduct({{0, 1, 2}, {1, 2}, {1, 12}})->UseRealTime()->Unit(benchmark::kMicrosecond);

// Reports GB/s as a counter; the time per iteration is one whole probe.
void BM_ReadBandwidth(benchmark::State& state) {
  sn::hal::ThreadPool pool({.n_threads = static_cast<int>(state.range(0))});
  const size_t bytes = size_t{1} << 30;
  double gbs = 0;
  for (auto _ : state) gbs = sn::hal::measure_read_bandwidth_gbs(pool, bytes, 3);
  state.counters["GB/s"] = gbs;
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
