// The compute thread pool: n-1 workers plus the calling thread, one per physical core,
// workers bound to their core through hwloc. Every kernel launch in a forward pass goes
// through run_raw(), so dispatch must cost microseconds: the owner publishes the job and
// bumps a generation counter; workers spin on it for a short while (kSpinBudget) and only
// then sleep on a futex, so back-to-back launches never pay a wake-up syscall.
// Called by CpuBackend kernels and benchmarks, from the single thread that owns the pool.
// Thread safety: one owner thread calls run_raw()/parallel_for_raw() (not concurrently,
// not re-entrantly); workers touch only the job fields published under the generation.
#include "supernode/hal/thread_pool.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "hwloc_topology.h"
#include "supernode/base/check.h"

namespace sn::hal {
namespace {

// How long an idle worker spins before it sleeps. A decode step launches kernels every few
// microseconds; a gap of 100 µs means the model is between steps.
constexpr auto kSpinBudget = std::chrono::microseconds(100);

inline void cpu_relax() { __builtin_ia32_pause(); }

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  // Returns at once (EAGAIN) when *word != expected, which is what makes wake-ups not lost.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

// CPUs this process may run on (its affinity mask), at least 1.
int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, CPU_COUNT(&set));
}

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free);

}  // namespace

struct ThreadPool::Impl {
  int n_threads = 1;
  // More threads than CPUs: a spinning thread would hold the core the thread it waits for
  // needs, so waiting threads yield instead of pausing.
  bool oversubscribed = false;
  detail::HwlocTopology hwloc;  // kept loaded for binding
  std::vector<std::thread> workers;

  // The published job. Written by the owner before the generation bump (release) and read
  // by workers after observing it (acquire).
  void (*fn)(void*, int, int) = nullptr;
  void* ctx = nullptr;

  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<int> pending{0};   // workers still running the current job
  alignas(64) std::atomic<int> sleepers{0};  // workers inside (or about to enter) futex_wait
  std::atomic<bool> stop{false};

  // parallel_for state, reset by the owner before each job.
  alignas(64) std::atomic<int64_t> next_task{0};

  void pin(int thread) {
    if (!hwloc.ok()) return;
    hwloc_topology_t topo = hwloc.get();
    const hwloc_obj_type_t type = hwloc.core_type();
    const int n_cores = hwloc.core_count();
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, type, static_cast<unsigned>(thread % n_cores));
    if (core == nullptr || core->cpuset == nullptr) return;
    // Failure (restricted cpuset, container without the capability) only costs locality.
    (void)hwloc_set_cpubind(topo, core->cpuset, HWLOC_CPUBIND_THREAD);
  }

  void worker_main(int thread, bool do_pin) {
    if (do_pin) pin(thread);
    uint32_t seen = 0;  // the constructor publishes no job before workers start
    for (;;) {
      uint32_t gen = generation.load(std::memory_order_acquire);
      if (gen == seen) {
        const auto start = std::chrono::steady_clock::now();
        int spins = 0;
        while ((gen = generation.load(std::memory_order_acquire)) == seen) {
          if (oversubscribed) {
            std::this_thread::yield();
          } else {
            cpu_relax();
          }
          if (++spins % 64 != 0) continue;
          if (std::chrono::steady_clock::now() - start < kSpinBudget) continue;
          // Sleep. The seq_cst increment pairs with the owner's seq_cst bump + sleepers
          // load: either the owner sees us and wakes, or we see its new generation (the
          // futex itself re-checks the word atomically).
          sleepers.fetch_add(1, std::memory_order_seq_cst);
          if (generation.load(std::memory_order_seq_cst) == seen) futex_wait(&generation, seen);
          sleepers.fetch_sub(1, std::memory_order_seq_cst);
        }
      }
      seen = gen;
      if (stop.load(std::memory_order_acquire)) return;
      fn(ctx, thread, n_threads);
      pending.fetch_sub(1, std::memory_order_acq_rel);  // after this, fn/ctx may change
    }
  }

  void publish_and_wake() {
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&generation);
  }

  void wait_workers() {
    const auto start = std::chrono::steady_clock::now();
    int spins = 0;
    while (pending.load(std::memory_order_acquire) != 0) {
      if (oversubscribed) {
        std::this_thread::yield();
        continue;
      }
      cpu_relax();
      // Past the spin budget a worker is probably descheduled (oversubscribed machine):
      // give it our core.
      if (++spins % 64 == 0 && std::chrono::steady_clock::now() - start > kSpinBudget) std::this_thread::yield();
    }
  }
};

ThreadPool::ThreadPool(Options options) : impl_(std::make_unique<Impl>()) {
  int n = options.n_threads;
  if (n <= 0) n = impl_->hwloc.ok() ? impl_->hwloc.core_count() : static_cast<int>(std::thread::hardware_concurrency());
  impl_->n_threads = std::max(1, n);
  impl_->oversubscribed = impl_->n_threads > allowed_cpus();
  impl_->workers.reserve(static_cast<size_t>(impl_->n_threads - 1));
  // The caller (thread 0) is not bound: it belongs to its owner; workers take cores 1..n-1.
  for (int t = 1; t < impl_->n_threads; ++t) {
    impl_->workers.emplace_back([impl = impl_.get(), t, pin = options.pin] { impl->worker_main(t, pin); });
  }
}

ThreadPool::~ThreadPool() {
  impl_->stop.store(true, std::memory_order_release);
  impl_->publish_and_wake();
  for (std::thread& w : impl_->workers) w.join();
}

int ThreadPool::size() const { return impl_->n_threads; }

void ThreadPool::run_raw(void (*fn)(void* ctx, int thread, int n_threads), void* ctx) {
  Impl& p = *impl_;
  if (p.n_threads == 1) {
    fn(ctx, 0, 1);
    return;
  }
  p.fn = fn;
  p.ctx = ctx;
  p.pending.store(p.n_threads - 1, std::memory_order_relaxed);
  p.publish_and_wake();
  fn(ctx, 0, p.n_threads);
  p.wait_workers();
}

namespace {

struct ForJob {
  std::atomic<int64_t>* next;
  int64_t n_tasks;
  void (*fn)(void*, int64_t, int);
  void* ctx;
};

void for_body(void* raw, int thread, int /*n_threads*/) {
  ForJob& job = *static_cast<ForJob*>(raw);
  for (;;) {
    const int64_t i = job.next->fetch_add(1, std::memory_order_relaxed);
    if (i >= job.n_tasks) return;
    job.fn(job.ctx, i, thread);
  }
}

}  // namespace

void ThreadPool::parallel_for_raw(int64_t n_tasks, void (*fn)(void* ctx, int64_t task, int thread), void* ctx) {
  if (n_tasks <= 0) return;
  if (n_tasks == 1 || impl_->n_threads == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i, 0);
    return;
  }
  impl_->next_task.store(0, std::memory_order_relaxed);
  ForJob job{&impl_->next_task, n_tasks, fn, ctx};
  run_raw(for_body, &job);
}

}  // namespace sn::hal
