// The memory read bandwidth probe behind `supernode bench` and bench_hal: every pool
// thread first-touches and then streams through its own slice of one large buffer with
// AVX2 loads (the x86-64-v3 baseline every build targets), 8 independent accumulators so
// the loop is bound by memory, not by add latency.
// Thread safety: drives the pool; call from the pool's owner thread.
#include "supernode/hal/bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "supernode/base/check.h"

namespace sn::hal {
namespace {

constexpr size_t kPage = 4096;

struct Probe {
  char* buf = nullptr;
  size_t slice = 0;          // bytes per thread, a multiple of kPage
  std::vector<float> sinks;  // one per thread (x16 to keep cache lines apart)
};

float sum_slice(const char* p, size_t bytes) {
  const float* f = reinterpret_cast<const float*>(p);
  const size_t n = bytes / sizeof(float);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(f + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(f + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(f + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(f + i + 24));
    a4 = _mm256_add_ps(a4, _mm256_load_ps(f + i + 32));
    a5 = _mm256_add_ps(a5, _mm256_load_ps(f + i + 40));
    a6 = _mm256_add_ps(a6, _mm256_load_ps(f + i + 48));
    a7 = _mm256_add_ps(a7, _mm256_load_ps(f + i + 56));
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                 _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0.0f;
  for (float x : lanes) total += x;
  return total;
}

}  // namespace

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int repeats) {
  SN_CHECK(bytes > 0 && repeats >= 1) << "bandwidth probe of " << bytes << " bytes x " << repeats;
  const size_t n_threads = static_cast<size_t>(pool.size());
  Probe probe;
  probe.slice = (bytes / n_threads + kPage - 1) / kPage * kPage;
  const size_t total = probe.slice * n_threads;
  probe.buf = static_cast<char*>(std::aligned_alloc(kPage, total));
  SN_CHECK(probe.buf != nullptr) << "cannot allocate " << total << " bytes for the bandwidth probe";
  probe.sinks.assign(n_threads * 16, 0.0f);

  // First touch from the owning thread places each slice's pages on that thread's node.
  pool.run([&](int t, int) {
    char* mine = probe.buf + static_cast<size_t>(t) * probe.slice;
    std::memset(mine, 0, probe.slice);
    // A non-zero pattern keeps the sums honest (no page stays the shared zero page).
    float* f = reinterpret_cast<float*>(mine);
    for (size_t i = 0; i < probe.slice / sizeof(float); i += kPage / sizeof(float)) f[i] = 1.0f;
  });

  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    pool.run([&](int t, int) {
      probe.sinks[static_cast<size_t>(t) * 16] += sum_slice(probe.buf + static_cast<size_t>(t) * probe.slice, probe.slice);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(total) / seconds / 1e9);
  }
  // Consume the sums so the loads cannot be optimized away.
  volatile float sink = 0.0f;
  for (float s : probe.sinks) sink = sink + s;
  (void)sink;
  std::free(probe.buf);
  return best;
}

}  // namespace sn::hal
