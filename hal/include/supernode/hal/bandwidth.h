// Memory read bandwidth as the pool's threads see it: the roofline that decode speed is
// measured against (`supernode bench` prints it next to tokens/s).
//
//   hal::ThreadPool pool({});
//   double gbs = hal::measure_read_bandwidth_gbs(pool, size_t{1} << 30, 5);
//
// Thread safety: drives `pool`, so call it from the pool's owner thread only.
#pragma once

#include <cstddef>

#include "supernode/hal/thread_pool.h"

namespace sn::hal {

// Allocates a `bytes` buffer (rounded up to whole pages per thread), lets each pool thread
// first-touch its own slice (so the pages sit on that thread's NUMA node), then times
// `repeats` passes in which every thread sums its slice with 256-bit loads. Returns the
// best pass in GB/s (1e9 bytes per second). REQUIRES: bytes > 0, repeats >= 1. Takes
// about repeats * bytes / bandwidth seconds plus the first touch; allocation failure
// aborts (a benchmark-only tool).
[[nodiscard]] double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int repeats);

}  // namespace sn::hal
