// Where the scheduler reads time: a small interface so tests drive time by hand and
// production reads the monotonic clock. Used for per-request timestamps (arrival, first
// scheduled, first token, finish), never for scheduling decisions that tests must replay.
//
// Thread safety: SteadyClock is safe from any thread; ManualClock needs external
// synchronization when shared between threads.
#pragma once

#include <cstdint>

namespace sn::scheduler {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since an arbitrary fixed origin; never decreases.
  [[nodiscard]] virtual int64_t now_ns() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] int64_t now_ns() const override;
};

// Time that moves only when told to (tests, replayed workloads).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns = 0) : now_(start_ns) {}
  [[nodiscard]] int64_t now_ns() const override { return now_; }
  // REQUIRES: ns >= 0.
  void advance_ns(int64_t ns) { now_ += ns; }

 private:
  int64_t now_;
};

}  // namespace sn::scheduler
