// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with clang's
// thread-safety annotations (libstdc++'s std::mutex carries none, so SN_GUARDED_BY on a
// std::mutex checks nothing). scripts/check-thread-safety.sh runs the analysis in CI.
//
//   mutable Mutex mu_;
//   int count_ SN_GUARDED_BY(mu_) = 0;
//   void add() SN_EXCLUDES(mu_) { MutexLock lock(mu_); ++count_; }
//   void wait_positive() { MutexLock lock(mu_); while (count_ <= 0) cv_.wait(mu_); }
//
// CondVar has no predicate overloads: a predicate lambda is analysed on its own, without
// the lock its caller holds, so callers loop (`while (!ready_) cv_.wait(mu_);`), which
// the analysis follows.
// Thread safety: these are the synchronization.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "supernode/base/thread_annotations.h"

namespace sn {

class SN_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void lock() SN_ACQUIRE() { mu_.lock(); }
  void unlock() SN_RELEASE() { mu_.unlock(); }
  [[nodiscard]] bool try_lock() SN_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class SN_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) SN_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() SN_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

class CondVar {
 public:
  // Releases `mu` while waiting; holds it again on return (also on spurious wake-ups).
  void wait(Mutex& mu) SN_REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu.mu_, std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  // False when `timeout` passed.
  template <class Rep, class Period>
  bool wait_for(Mutex& mu, std::chrono::duration<Rep, Period> timeout) SN_REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu.mu_, std::adopt_lock);
    const bool woken = cv_.wait_for(l, timeout) == std::cv_status::no_timeout;
    l.release();
    return woken;
  }
  template <class Clock, class Duration>
  bool wait_until(Mutex& mu, std::chrono::time_point<Clock, Duration> deadline) SN_REQUIRES(mu) {
    std::unique_lock<std::mutex> l(mu.mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(l, deadline) == std::cv_status::no_timeout;
    l.release();
    return woken;
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace sn
