// RateLimiter: the quotas of API keys and tenants (requests per minute, tokens per minute,
// requests in flight), as token buckets that refill continuously (a limit of N per minute
// refills N/60 per second, up to N). A request is admitted only when every bucket that
// applies to it (its key's and its tenant's) has room; then it takes 1 request, its prompt
// tokens plus max_tokens (capped at the bucket), and one in-flight slot, all or nothing.
// When it ends, release() returns the slot and the tokens it did not generate. A refusal
// says which limit and when to retry, for a 429 with Retry-After and OpenAI's
// x-ratelimit-* headers.
//
//   Admission a = limiter.admit({{"key:" + id, key_limits}, {"tenant:" + t, tenant_limits}},
//                               prompt + max_tokens, now_s);
//   if (!a.ok) return too_many_requests(a.retry_after_s);
//   ... generate ...
//   limiter.release(a.ticket, prompt + max_tokens - (prompt + completion), now_s);
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "supernode/storage/state_store.h"

namespace sn::daemon {

struct RateScope {
  std::string name;  // "key:<id>" or "tenant:<name>"
  storage::Limits limits;
};

// The state of one scope after a decision, for the x-ratelimit-* headers (of the tightest
// scope that has a limit of that kind; 0 limit: none).
struct RateHeaders {
  int64_t limit_requests = 0, remaining_requests = 0;
  double reset_requests_s = 0;
  int64_t limit_tokens = 0, remaining_tokens = 0;
  double reset_tokens_s = 0;
};

struct Admission {
  bool ok = false;
  uint64_t ticket = 0;        // for release() when ok
  std::string refused_by;     // when !ok: "requests per minute of key:...", ...
  double retry_after_s = 0;   // when !ok
  RateHeaders headers;
};

class RateLimiter {
 public:
  // `tokens` = prompt tokens + max_tokens; `now_s` a monotonic time in seconds.
  [[nodiscard]] Admission admit(const std::vector<RateScope>& scopes, int64_t tokens, double now_s);
  // The request of `ticket` ended; `unused_tokens` of what it reserved go back.
  void release(uint64_t ticket, int64_t unused_tokens, double now_s);
  // Forgets scopes idle for more than `idle_s` (full buckets, nothing in flight).
  void prune(double now_s, double idle_s = 600);
  [[nodiscard]] size_t scopes() const;

 private:
  struct Bucket {
    double requests = 0, tokens = 0;  // available now (after refill at `at`)
    int64_t in_flight = 0;
    double at = 0;
    bool fresh = true;
  };
  struct Held {
    std::vector<std::string> scopes;
    std::vector<int64_t> token_caps;  // tokens taken per scope
  };
  void refill(Bucket& b, const storage::Limits& l, double now_s);

  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::unordered_map<std::string, storage::Limits> limits_;  // last seen per scope
  std::unordered_map<uint64_t, Held> held_;
  uint64_t next_ticket_ = 1;
};

}  // namespace sn::daemon
