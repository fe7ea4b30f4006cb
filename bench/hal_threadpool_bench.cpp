// Thread pool dispatch cost: an empty run() (publish, every worker wakes from its spin,
// runs nothing, the caller waits) and a parallel_for of tiny tasks, for 1 and 2 threads.
// The forward pass launches a few hundred kernels per decode step, so this number times
// that count is the pool's share of a step.
// Thread safety: single-threaded driver; each benchmark owns its pool.
#include <benchmark/benchmark.h>

#include <atomic>

#include "supernode/hal/thread_pool.h"

namespace {

void BM_ThreadPoolEmptyRun(benchmark::State& state) {
  sn::hal::ThreadPool pool({.n_threads = static_cast<int>(state.range(0))});
  for (auto _ : state) pool.run([](int, int) {});
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadPoolEmptyRun)->Arg(1)->Arg(2)->UseRealTime();

void BM_ThreadPoolTinyTasks(benchmark::State& state) {
  sn::hal::ThreadPool pool({.n_threads = static_cast<int>(state.range(0))});
  const int64_t n_tasks = state.range(1);
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    pool.parallel_for(n_tasks, [&](int64_t i, int) {
      if (i == 0) sink.fetch_add(1, std::memory_order_relaxed);
    });
  }
  benchmark::DoNotOptimize(sink.load());
  state.SetItemsProcessed(state.iterations() * n_tasks);
}
BENCHMARK(BM_ThreadPoolTinyTasks)->Args({1, 64})->Args({2, 64})->Args({2, 1024})->UseRealTime();

}  // namespace
