// Clang thread-safety annotations (checked with -Wthread-safety by
// scripts/check-thread-safety.sh in CI; no-ops elsewhere). Use them with sn::Mutex
// (supernode/base/mutex.h): SN_GUARDED_BY(mu_) on shared state, SN_REQUIRES(mu_) on
// functions that expect the lock held, SN_EXCLUDES(mu_) on those that take it.
#pragma once

#if defined(__clang__)
#define SN_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SN_THREAD_ANNOTATION(x)
#endif

#define SN_CAPABILITY(x) SN_THREAD_ANNOTATION(capability(x))
#define SN_SCOPED_CAPABILITY SN_THREAD_ANNOTATION(scoped_lockable)
#define SN_TRY_ACQUIRE(...) SN_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define SN_RETURN_CAPABILITY(x) SN_THREAD_ANNOTATION(lock_returned(x))
#define SN_GUARDED_BY(x) SN_THREAD_ANNOTATION(guarded_by(x))
#define SN_PT_GUARDED_BY(x) SN_THREAD_ANNOTATION(pt_guarded_by(x))
#define SN_REQUIRES(...) SN_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define SN_EXCLUDES(...) SN_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define SN_ACQUIRE(...) SN_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define SN_RELEASE(...) SN_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define SN_NO_THREAD_SAFETY_ANALYSIS SN_THREAD_ANNOTATION(no_thread_safety_analysis)
