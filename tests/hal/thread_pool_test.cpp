// The thread pool: every thread runs each parallel section once, every parallel_for task
// runs exactly once for many sizes (0 and 1 included), thousands of back-to-back launches
// complete (no lost wake-ups), sleeping workers wake, and the pool shuts down cleanly;
// the bandwidth probe that runs on the pool returns a sane rate.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "supernode/hal/bandwidth.h"
#include "supernode/hal/thread_pool.h"

#include <CppUTest/TestHarness.h>

using sn::hal::ThreadPool;

TEST_GROUP(ThreadPool){};

TEST(ThreadPool, DefaultSizeIsAtLeastOne) {
  ThreadPool pool({});
  CHECK(pool.size() >= 1);
}

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  for (int n = 1; n <= 4; ++n) {
    ThreadPool pool({.n_threads = n});
    LONGS_EQUAL(n, pool.size());
    std::vector<std::atomic<int>> calls(static_cast<size_t>(n));
    std::atomic<int> bad{0};
    pool.run([&](int t, int nt) {
      if (t < 0 || t >= n || nt != n) {
        bad.fetch_add(1);
        return;
      }
      calls[static_cast<size_t>(t)].fetch_add(1);
    });
    LONGS_EQUAL(0, bad.load());
    for (auto& c : calls) LONGS_EQUAL(1, c.load());
  }
}

TEST(ThreadPool, CallerIsThreadZero) {
  ThreadPool pool({.n_threads = 2});
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id zero;
  pool.run([&](int t, int) {
    if (t == 0) zero = std::this_thread::get_id();
  });
  CHECK(zero == me);
}

TEST(ThreadPool, ParallelForRunsEveryTaskExactlyOnce) {
  for (int n = 1; n <= 4; ++n) {
    ThreadPool pool({.n_threads = n});
    for (int64_t tasks : {0, 1, 2, 3, 5, 7, 64, 1000, 4097}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
      std::atomic<int> bad_thread{0};
      pool.parallel_for(tasks, [&](int64_t i, int t) {
        if (t < 0 || t >= n) bad_thread.fetch_add(1);
        hits[static_cast<size_t>(i)].fetch_add(1);
      });
      LONGS_EQUAL(0, bad_thread.load());
      for (auto& h : hits) LONGS_EQUAL(1, h.load());
    }
  }
}

TEST(ThreadPool, ThousandsOfBackToBackLaunches) {
  for (int n = 1; n <= 4; ++n) {
    ThreadPool pool({.n_threads = n});
    int64_t sum = 0;  // written by thread 0 only: checks the caller sees the workers' effects
    std::vector<int64_t> per_thread(static_cast<size_t>(n) * 16, 0);  // padded slots
    for (int iter = 0; iter < 5000; ++iter) {
      pool.run([&](int t, int) { per_thread[static_cast<size_t>(t) * 16] += 1; });
      pool.parallel_for(3, [&](int64_t i, int t) { per_thread[static_cast<size_t>(t) * 16 + 1] += i; });
    }
    for (int t = 0; t < n; ++t) {
      LONGS_EQUAL(5000, per_thread[static_cast<size_t>(t) * 16]);
      sum += per_thread[static_cast<size_t>(t) * 16 + 1];
    }
    LONGS_EQUAL(5000 * 3, sum);
  }
}

TEST(ThreadPool, WakesSleepingWorkers) {
  ThreadPool pool({.n_threads = 3});
  for (int iter = 0; iter < 20; ++iter) {
    // Long enough for the workers to stop spinning and sleep on the futex.
    std::this_thread::sleep_for(std::chrono::milliseconds(iter % 4 == 0 ? 5 : 0));
    std::atomic<int> count{0};
    pool.run([&](int, int) { count.fetch_add(1); });
    LONGS_EQUAL(3, count.load());
  }
}

TEST(ThreadPool, UnpinnedPoolAndImmediateShutdown) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool({.n_threads = 4, .pin = false});
    if (i % 2 == 0) {
      std::atomic<int> count{0};
      pool.run([&](int, int) { count.fetch_add(1); });
      LONGS_EQUAL(4, count.load());
    }
  }
}

TEST_GROUP(Bandwidth){};

TEST(Bandwidth, MeasuresAPositiveRate) {
  ThreadPool pool({.n_threads = 2});
  const double gbs = sn::hal::measure_read_bandwidth_gbs(pool, size_t{8} << 20, 2);
  CHECK(gbs > 0.1);
  CHECK(gbs < 1e5);
}
