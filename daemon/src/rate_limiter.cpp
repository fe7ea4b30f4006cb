// Token buckets per scope (rate_limiter.h). A bucket starts full; refill is linear in time.
#include "supernode/daemon/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace sn::daemon {

void RateLimiter::refill(Bucket& b, const storage::Limits& l, double now_s) {
  if (b.fresh) {
    b.requests = static_cast<double>(l.rpm);
    b.tokens = static_cast<double>(l.tpm);
    b.at = now_s;
    b.fresh = false;
    return;
  }
  // A clock that went backwards refills nothing and does not move `at` back (which would
  // refill the same interval twice when it comes forward again).
  if (!(now_s > b.at)) return;
  const double dt = now_s - b.at;
  b.requests = std::min(static_cast<double>(l.rpm), b.requests + dt * static_cast<double>(l.rpm) / 60.0);
  b.tokens = std::min(static_cast<double>(l.tpm), b.tokens + dt * static_cast<double>(l.tpm) / 60.0);
  b.at = now_s;
}

Admission RateLimiter::admit(const std::vector<RateScope>& scopes, int64_t tokens, int64_t slots, double now_s) {
  MutexLock lock(mu_);
  Admission a;
  slots = std::max<int64_t>(1, slots);
  tokens = std::max<int64_t>(0, tokens);
  // Decide first, on every scope, then take from all of them.
  std::vector<int64_t> caps;
  for (const RateScope& s : scopes) {
    limits_[s.name] = s.limits;
    Bucket& b = buckets_[s.name];
    refill(b, s.limits, now_s);
    const storage::Limits& l = s.limits;
    const int64_t need_tokens = l.tpm > 0 ? std::min(tokens, l.tpm) : 0;  // a request bigger than a minute still runs
    caps.push_back(need_tokens);
    if (l.concurrency > 0 && b.in_flight + slots > l.concurrency) {
      a.refused_by = "concurrent requests of " + s.name + " (" + std::to_string(l.concurrency) +
                     (slots > 1 ? "; this request counts " + std::to_string(slots) + ", one per choice)" : ")");
      a.retry_after_s = 1;
    } else if (l.rpm > 0 && b.requests < 1.0) {
      a.refused_by = "requests per minute of " + s.name + " (" + std::to_string(l.rpm) + ")";
      a.retry_after_s = (1.0 - b.requests) * 60.0 / static_cast<double>(l.rpm);
    } else if (l.tpm > 0 && b.tokens < static_cast<double>(std::max<int64_t>(need_tokens, 1))) {
      a.refused_by = "tokens per minute of " + s.name + " (" + std::to_string(l.tpm) + ")";
      a.retry_after_s = (static_cast<double>(std::max<int64_t>(need_tokens, 1)) - b.tokens) * 60.0 / static_cast<double>(l.tpm);
    }
    if (!a.refused_by.empty()) break;
  }
  if (a.refused_by.empty()) {
    a.ok = true;
    a.ticket = next_ticket_++;
    Held& h = held_[a.ticket];
    h.slots = slots;
    for (size_t i = 0; i < scopes.size(); ++i) {
      Bucket& b = buckets_[scopes[i].name];
      if (scopes[i].limits.rpm > 0) b.requests -= 1.0;
      b.tokens -= static_cast<double>(caps[i]);
      b.in_flight += slots;
      h.scopes.push_back(scopes[i].name);
      h.token_caps.push_back(caps[i]);
    }
  }
  // Headers from the tightest scope of each kind.
  for (const RateScope& s : scopes) {
    const Bucket& b = buckets_[s.name];
    const storage::Limits& l = s.limits;
    if (l.rpm > 0 && (a.headers.limit_requests == 0 || b.requests < static_cast<double>(a.headers.remaining_requests))) {
      a.headers.limit_requests = l.rpm;
      a.headers.remaining_requests = static_cast<int64_t>(std::floor(std::max(0.0, b.requests)));
      a.headers.reset_requests_s = (static_cast<double>(l.rpm) - b.requests) * 60.0 / static_cast<double>(l.rpm);
    }
    if (l.tpm > 0 && (a.headers.limit_tokens == 0 || b.tokens < static_cast<double>(a.headers.remaining_tokens))) {
      a.headers.limit_tokens = l.tpm;
      a.headers.remaining_tokens = static_cast<int64_t>(std::floor(std::max(0.0, b.tokens)));
      a.headers.reset_tokens_s = (static_cast<double>(l.tpm) - b.tokens) * 60.0 / static_cast<double>(l.tpm);
    }
  }
  a.retry_after_s = std::max(a.retry_after_s, a.ok ? 0.0 : 0.001);
  return a;
}

void RateLimiter::settle(uint64_t ticket, int64_t used_tokens, double now_s) {
  MutexLock lock(mu_);
  auto it = held_.find(ticket);
  if (it == held_.end()) return;
  const Held& h = it->second;
  used_tokens = std::max<int64_t>(0, used_tokens);
  for (size_t i = 0; i < h.scopes.size(); ++i) {
    auto b = buckets_.find(h.scopes[i]);
    if (b == buckets_.end()) continue;
    const storage::Limits& l = limits_[h.scopes[i]];
    refill(b->second, l, now_s);
    b->second.in_flight -= h.slots;
    if (l.tpm > 0) {
      // Back what was reserved, off what was used: the balance may go negative (a debt).
      b->second.tokens = std::min(static_cast<double>(l.tpm),
                                  b->second.tokens + static_cast<double>(h.token_caps[i]) - static_cast<double>(used_tokens));
    }
  }
  held_.erase(it);
}

void RateLimiter::prune(double now_s, double idle_s) {
  MutexLock lock(mu_);
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (it->second.in_flight == 0 && now_s - it->second.at > idle_s) {
      limits_.erase(it->first);
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t RateLimiter::scopes() const {
  MutexLock lock(mu_);
  return buckets_.size();
}

}  // namespace sn::daemon
