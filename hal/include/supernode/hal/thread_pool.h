// A fixed pool of worker threads, one per physical core by default, pinned through hwloc,
// with a barrier-style parallel section whose dispatch costs microseconds (workers spin
// briefly before sleeping). The calling thread takes part as thread 0.
//
//   ThreadPool pool({.n_threads = 2});
//   pool.run([&](int thread, int n_threads) { work(thread, n_threads); });
//   pool.parallel_for(rows, [&](int64_t i, int thread) { row(i); });
//
// Thread safety: run()/parallel_for() must not be called concurrently or re-entrantly;
// one owner thread drives the pool.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

namespace sn::hal {

class ThreadPool {
 public:
  struct Options {
    int n_threads = 0;  // 0: one per physical core
    bool pin = true;    // bind each worker to one physical core
  };

  explicit ThreadPool(Options options);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int size() const;

  // Runs fn(thread, n_threads) once on every thread of the pool (the caller is thread 0)
  // and returns when all have finished.
  void run_raw(void (*fn)(void* ctx, int thread, int n_threads), void* ctx);

  template <typename F>
  void run(F&& fn) {
    run_raw([](void* ctx, int t, int n) { (*static_cast<std::remove_reference_t<F>*>(ctx))(t, n); }, &fn);
  }

  // Runs fn(task, thread) for every task in [0, n_tasks), tasks handed out dynamically
  // in order; returns when all are done.
  void parallel_for_raw(int64_t n_tasks, void (*fn)(void* ctx, int64_t task, int thread), void* ctx);

  template <typename F>
  void parallel_for(int64_t n_tasks, F&& fn) {
    parallel_for_raw(
        n_tasks, [](void* ctx, int64_t i, int t) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i, t); }, &fn);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::hal
