// The monotonic clock behind the Clock interface.
#include <chrono>

#include "supernode/scheduler/clock.h"

namespace sn::scheduler {

int64_t SteadyClock::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace sn::scheduler
