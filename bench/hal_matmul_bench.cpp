// CpuBackend::matmul at TinyLlama-1.1B shapes, 2 threads: GEMV (1 token, decode) reports
// weight bytes streamed per second; GEMM (128 tokens, prefill) reports ops (2 per
// multiply-add) per second. One benchmark per weight type x kernel family x shape; the
// "avx512-packed" family runs weights prepared by CpuBackend::prepare (what the engine does).
//
//   ./build/bin/bench_hal --benchmark_filter=Matmul --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/fp16.h"
#include "supernode/hal/thread_pool.h"

namespace {

using sn::hal::DType;
using sn::hal::Isa;

sn::hal::ThreadPool& bench_pool() {
  static sn::hal::ThreadPool pool({.n_threads = 2});
  return pool;
}

// Random blocks with modest f16 scales (values do not affect the kernels' speed).
std::vector<uint8_t> random_weights(DType type, int64_t rows, int64_t cols) {
  const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
  std::vector<uint8_t> w(static_cast<size_t>(rows * *sn::hal::dtype_row_bytes(type, cols)));
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= w.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(w.data() + i, &v, 8);
  }
  const uint16_t d = sn::hal::fp32_to_fp16(0.01f);
  const int64_t scale_at = type == DType::kQ6_K ? 208 : 0;
  for (int64_t b = 0; b < rows * cols / info.block_elems; ++b) {
    uint8_t* p = w.data() + b * info.block_bytes + scale_at;
    std::memcpy(p, &d, 2);
    if (type == DType::kQ4_K) std::memcpy(p + 2, &d, 2);
  }
  return w;
}

void bm_matmul(benchmark::State& state, DType type, Isa isa, bool packed, int64_t rows, int64_t cols,
               int64_t n_tokens) {
  if (!sn::hal::isa_supported(isa)) {
    state.SkipWithError("kernel family not supported by this CPU");
    return;
  }
  sn::hal::CpuBackend be(bench_pool(), isa);
  const std::vector<uint8_t> w = random_weights(type, rows, cols);
  std::vector<float> x(static_cast<size_t>(n_tokens * cols));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : x) v = u(rng);
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));
  const sn::hal::WeightView view{type, rows, cols, w.data()};
  if (packed) be.prepare(view);
  for (auto _ : state) {
    be.matmul(view, x.data(), n_tokens, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["weight_bytes/s"] =
      benchmark::Counter(iters * static_cast<double>(w.size()), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.counters["ops/s"] = benchmark::Counter(iters * 2.0 * static_cast<double>(rows * cols * n_tokens),
                                               benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// Decode as the model sees it: many distinct matrices (more bytes than any cache), each
// streamed once per pass from DRAM. Compare with the ReadBandwidth benchmark of the same run.
void bm_gemv_stream(benchmark::State& state, DType type, int64_t rows, int64_t cols, int copies, int64_t n_tokens) {
  sn::hal::CpuBackend be(bench_pool(), sn::hal::best_isa());
  std::vector<std::vector<uint8_t>> ws;
  std::vector<sn::hal::WeightView> views;
  for (int c = 0; c < copies; ++c) {
    ws.push_back(random_weights(type, rows, cols));
    views.push_back({type, rows, cols, ws.back().data()});
    be.prepare(views.back());
  }
  std::vector<float> x(static_cast<size_t>(cols * n_tokens), 0.5f);
  std::vector<float> y(static_cast<size_t>(rows * n_tokens));
  for (auto _ : state) {
    for (const sn::hal::WeightView& v : views) be.matmul(v, x.data(), n_tokens, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * copies * static_cast<double>(ws[0].size()),
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.counters["ops/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * copies * 2.0 *
                                                   static_cast<double>(rows * cols * n_tokens),
                                               benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

struct Shape {
  int64_t rows, cols;
};

int register_all() {
  for (DType type : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K}) {
    for (int64_t nt : {1, 16}) {
      // 16 tokens: a batch of 16 decoding streams, weights streamed from DRAM as in the model.
      const std::string name = std::string(nt == 1 ? "MatmulGemvStream/" : "MatmulGemm16Stream/") +
                               sn::hal::dtype_name(type) + "/64x2048x5632";
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { bm_gemv_stream(st, type, 2048, 5632, 64, nt); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  const Shape shapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
  const DType types[] = {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K};
  struct Family {
    Isa isa;
    bool packed;
    const char* name;
  };
  const Family families[] = {{Isa::kAvx512, true, "avx512-packed"}, {Isa::kAvx512, false, "avx512"},
                             {Isa::kAvx2, false, "avx2"}, {Isa::kScalar, false, "scalar"}};
  // 16 tokens: a batch of decodes, or a short suffix after a prefix hit (packed kernels only).
  for (int64_t n_tokens : {1, 16, 128}) {
    for (DType type : types) {
      for (const Family& f : families) {
        const Isa isa = f.isa;
        const bool packed = f.packed;
        if (isa == Isa::kScalar && n_tokens > 1) continue;  // minutes per iteration, not informative
        if (n_tokens == 16 && !packed) continue;
        for (const Shape& s : shapes) {
          const std::string name = std::string(n_tokens == 1 ? "MatmulGemv/" : n_tokens == 16 ? "MatmulGemm16/" : "MatmulGemm/") +
                                   sn::hal::dtype_name(type) + "/" + f.name + "/" +
                                   std::to_string(s.rows) + "x" + std::to_string(s.cols);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
            bm_matmul(st, type, isa, packed, s.rows, s.cols, n_tokens);
          })
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime()
              // The box is shared: with --benchmark_repetitions, "min" is the least disturbed run.
              ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
        }
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace
