// RateLimiter: the quotas of API keys and tenants (requests per minute, tokens per minute,
// requests in flight), as token buckets that refill continuously (a limit of N per minute
// refills N/60 per second, up to N). A request is admitted only when every bucket that
// applies to it (its key's and its tenant's) has room; then it takes 1 request, `slots`
// in-flight slots (its choices, n) and a reservation of the tokens it may use (capped at a
// minute's worth, so a request bigger than a minute still runs once), all or nothing. When
// it ends, settle() charges what it really used: the reservation is given back and the
// tokens used are taken, so a bucket may go below zero (a debt that later requests wait
// out). Nothing is refunded that was used, however the request ended. A refusal says which
// limit and when to retry, for a 429 with Retry-After and OpenAI's x-ratelimit-* headers.
// Time is a monotonic clock the caller passes; a time that goes backwards refills nothing.
//
//   Admission a = limiter.admit({{"key:" + id, key_limits}, {"tenant:" + t, tenant_limits}},
//                               n * max_tokens, n, now_s);
//   if (!a.ok) return too_many_requests(a.retry_after_s);
//   ... tokenize, generate ...
//   limiter.settle(a.ticket, prompt + completion, now_s);
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "supernode/base/mutex.h"
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
  // `tokens`: what the request may use (reserved); `slots`: in-flight slots it holds (>= 1);
  // `now_s` a monotonic time in seconds.
  [[nodiscard]] Admission admit(const std::vector<RateScope>& scopes, int64_t tokens, int64_t slots, double now_s);
  // The request of `ticket` ended having used `used_tokens` (prompt + completion): its
  // reservation and slots go back and the tokens used are charged. Once per ticket.
  void settle(uint64_t ticket, int64_t used_tokens, double now_s);
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
    std::vector<int64_t> token_caps;  // tokens reserved per scope
    int64_t slots = 1;
  };
  static void refill(Bucket& b, const storage::Limits& l, double now_s);

  mutable Mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_ SN_GUARDED_BY(mu_);
  std::unordered_map<std::string, storage::Limits> limits_ SN_GUARDED_BY(mu_);  // last seen per scope
  std::unordered_map<uint64_t, Held> held_ SN_GUARDED_BY(mu_);
  uint64_t next_ticket_ SN_GUARDED_BY(mu_) = 1;
};

}  // namespace sn::daemon
