// CudaBackend::matmul as decode runs it (GEMV, 1 and 8 tokens) at 7B/8B-model shapes:
// effective bandwidth in GB/s of weight bytes read (GGUF bytes per second), beside the
// device-to-device copy bandwidth measured in the same run (bytes read + written per
// second, the decode roofline's convention); `of_copy` is the ratio of the two, and
// us/matmul the time of one matmul (quantizing the activations included). Each
// pass streams enough distinct copies of the weight (>= 512 MiB) that they cannot live
// in the 50 MB L2, as a model's layers do. Reports an error per benchmark without a GPU.
//
//   ./build/bin/bench_gpu --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "supernode/hal/cuda_backend.h"
#include "supernode/hal/dtype.h"
#include "supernode/hal/fp16.h"

namespace {

using sn::hal::CudaBackend;
using sn::hal::DType;

struct Gpu {
  std::unique_ptr<CudaBackend> be;
  std::string why;
  double copy_gbs = 0.0;
};

Gpu& gpu() {
  static Gpu g = [] {
    Gpu r;
    sn::Result<std::unique_ptr<CudaBackend>> be = CudaBackend::create(0);
    if (!be.ok()) {
      r.why = be.status().message();
      return r;
    }
    r.be = std::move(*be);
    sn::Result<double> c = r.be->measure_copy_gbs(int64_t{1} << 30, 10);
    r.copy_gbs = c.ok() ? *c : 0.0;
    return r;
  }();
  return g;
}

std::vector<uint8_t> random_weights(DType type, int64_t rows, int64_t cols) {
  const sn::hal::DTypeInfo info = sn::hal::dtype_info(type);
  std::vector<uint8_t> w(static_cast<size_t>(rows * *sn::hal::dtype_row_bytes(type, cols)));
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= w.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(w.data() + i, &v, 8);
  }
  if (info.block_elems == 1) {  // finite f16 values
    for (size_t i = 0; i + 2 <= w.size(); i += 2) w[i + 1] &= 0x3B;
    return w;
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

// One pass = one matmul on each copy, captured into a CUDA graph (`graph`, as decode
// will run) or launched op by op (the host's launch rate then bounds small shapes).
void bm_gemv(benchmark::State& state, DType type, int64_t rows, int64_t cols, int64_t n_tokens, bool graph) {
  Gpu& g = gpu();
  if (g.be == nullptr) {
    state.SkipWithError(g.why.c_str());
    return;
  }
  CudaBackend& be = *g.be;
  const std::vector<uint8_t> host = random_weights(type, rows, cols);
  const int64_t bytes = static_cast<int64_t>(host.size());
  const int64_t copies = std::max<int64_t>(2, ((int64_t{512} << 20) + bytes - 1) / bytes);
  std::vector<sn::hal::DeviceWeight> ws;
  for (int64_t i = 0; i < copies; ++i) {
    sn::Result<sn::hal::DeviceWeight> w = be.upload_weight({type, rows, cols, host.data()});
    if (!w.ok()) {
      state.SkipWithError(w.status().to_string().c_str());
      return;
    }
    ws.push_back(std::move(*w));
  }
  std::vector<float> xh(static_cast<size_t>(n_tokens * cols));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : xh) v = u(rng);
  sn::Result<sn::hal::DeviceBuffer> x = be.alloc(n_tokens * cols * 4);
  sn::Result<sn::hal::DeviceBuffer> y = be.alloc(n_tokens * rows * 4);
  if (!x.ok() || !y.ok()) {
    state.SkipWithError("out of device memory");
    return;
  }
  be.copy_to_device(x->data(), xh.data(), x->size());
  auto pass = [&] {
    for (const sn::hal::DeviceWeight& w : ws) be.matmul(w, x->as<float>(), n_tokens, y->as<float>(), rows);
  };
  (void)be.time_ms(pass);  // warm-up; grows the activation scratch before any capture
  sn::hal::DeviceGraph dg;
  if (graph) {
    sn::Result<sn::hal::DeviceGraph> c = be.capture(pass);
    if (!c.ok()) {
      state.SkipWithError(c.status().to_string().c_str());
      return;
    }
    dg = std::move(*c);
    (void)be.time_ms([&] { be.replay(dg); });
  }
  for (auto _ : state) {
    sn::Result<double> ms = graph ? be.time_ms([&] { be.replay(dg); }) : be.time_ms(pass);
    if (!ms.ok()) {
      state.SkipWithError(ms.status().to_string().c_str());
      return;
    }
    state.SetIterationTime(*ms / 1e3);
  }
  const double gb = static_cast<double>(state.iterations()) * static_cast<double>(bytes * copies) / 1e9;
  state.counters["us_per_matmul"] = benchmark::Counter(static_cast<double>(state.iterations() * copies) * 1e-6,
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["weight_GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsRate);
  state.counters["copy_GB/s"] = g.copy_gbs;
  state.counters["of_copy"] = benchmark::Counter(gb / (g.copy_gbs > 0 ? g.copy_gbs : 1.0), benchmark::Counter::kIsRate);
}

void bm_copy(benchmark::State& state) {
  Gpu& g = gpu();
  if (g.be == nullptr) {
    state.SkipWithError(g.why.c_str());
    return;
  }
  for (auto _ : state) {
    sn::Result<double> c = g.be->measure_copy_gbs(int64_t{1} << 30, 3);
    if (!c.ok()) {
      state.SkipWithError(c.status().to_string().c_str());
      return;
    }
    state.SetIterationTime(2.0 * (int64_t{1} << 30) / (*c * 1e9));
    state.counters["copy_GB/s"] = *c;
  }
}

void register_all() {
  benchmark::RegisterBenchmark("GpuCopyD2D", bm_copy)->UseManualTime()->Iterations(3);
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}};
  const DType types[] = {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kF16};
  for (DType t : types) {
    for (const Shape& sh : shapes) {
      for (int64_t n : {1, 8}) {
        for (bool graph : {true, false}) {
          if (!graph && n != 1) continue;
          const std::string name = std::string("GpuGemv/") + sn::hal::dtype_name(t) + "/" + std::to_string(sh.rows) +
                                   "x" + std::to_string(sh.cols) + "/tokens:" + std::to_string(n) +
                                   (graph ? "/graph" : "/stream");
          benchmark::RegisterBenchmark(name.c_str(), bm_gemv, t, sh.rows, sh.cols, n, graph)
              ->UseManualTime()
              ->MinTime(0.1);
        }
      }
    }
  }
}

const int kRegistered = (register_all(), 0);

}  // namespace
