// RateLimiter: token buckets for requests and tokens per minute and for requests in flight,
// per key and per tenant together; refusals name the limit and when to retry; releases give
// back slots and unused tokens; idle scopes are pruned.
#include "supernode/daemon/rate_limiter.h"

#include <CppUTest/TestHarness.h>

using sn::daemon::Admission;
using sn::daemon::RateLimiter;
using sn::daemon::RateScope;
using sn::storage::Limits;

TEST_GROUP(RateLimiter){};

TEST(RateLimiter, RequestsPerMinuteRefillContinuously) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"key:a", Limits{.rpm = 2}}};
  CHECK_TRUE(r.admit(s, 10, 0.0).ok);
  CHECK_TRUE(r.admit(s, 10, 0.0).ok);
  Admission no = r.admit(s, 10, 0.0);
  CHECK_FALSE(no.ok);
  CHECK_TRUE(no.refused_by.find("requests per minute of key:a") != std::string::npos);
  DOUBLES_EQUAL(30.0, no.retry_after_s, 1e-6);  // one request refills in 60 / 2 s
  LONGS_EQUAL(2, no.headers.limit_requests);
  LONGS_EQUAL(0, no.headers.remaining_requests);
  CHECK_FALSE(r.admit(s, 10, 29.0).ok);
  CHECK_TRUE(r.admit(s, 10, 30.5).ok);
}

TEST(RateLimiter, TokensAreReservedAndUnusedOnesComeBack) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"tenant:t", Limits{.tpm = 1000}}};
  Admission a = r.admit(s, 600, 0.0);  // prompt + max_tokens
  CHECK_TRUE(a.ok);
  LONGS_EQUAL(400, a.headers.remaining_tokens);
  CHECK_FALSE(r.admit(s, 600, 0.0).ok);
  r.release(a.ticket, 500, 0.0);  // generated only 100 of its max_tokens
  CHECK_TRUE(r.admit(s, 600, 0.0).ok);
  // A request larger than a whole minute of tokens still runs (on a full bucket).
  RateLimiter big;
  CHECK_TRUE(big.admit(s, 5000, 0.0).ok);
}

TEST(RateLimiter, ConcurrencyCountsRequestsInFlight) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"key:a", Limits{.concurrency = 1}}};
  Admission a = r.admit(s, 1, 0.0);
  CHECK_TRUE(a.ok);
  Admission b = r.admit(s, 1, 0.0);
  CHECK_FALSE(b.ok);
  CHECK_TRUE(b.refused_by.find("concurrent") != std::string::npos);
  r.release(a.ticket, 0, 0.1);
  CHECK_TRUE(r.admit(s, 1, 0.1).ok);
  r.release(12345, 0, 0.2);  // unknown tickets are ignored
}

TEST(RateLimiter, KeyAndTenantBothApplyAndARefusalTakesNothing) {
  RateLimiter r;
  const RateScope tenant{"tenant:t", Limits{.rpm = 3}};
  const std::vector<RateScope> k1 = {{"key:1", Limits{.rpm = 2}}, tenant};
  const std::vector<RateScope> k2 = {{"key:2", Limits{}}, tenant};
  CHECK_TRUE(r.admit(k1, 1, 0).ok);
  CHECK_TRUE(r.admit(k1, 1, 0).ok);
  Admission no = r.admit(k1, 1, 0);  // key 1 is out; the tenant has one left
  CHECK_FALSE(no.ok);
  CHECK_TRUE(no.refused_by.find("key:1") != std::string::npos);
  CHECK_TRUE(r.admit(k2, 1, 0).ok);  // so key 2 gets it
  Admission t = r.admit(k2, 1, 0);
  CHECK_FALSE(t.ok);
  CHECK_TRUE(t.refused_by.find("tenant:t") != std::string::npos);
}

TEST(RateLimiter, NoLimitsMeansNoRefusalAndIdleScopesArePruned) {
  RateLimiter r;
  for (int i = 0; i < 1000; ++i) r.release(r.admit({{"key:free", Limits{}}}, 1 << 20, i).ticket, 0, i);
  LONGS_EQUAL(1, r.scopes());
  r.prune(5000.0, 600);
  LONGS_EQUAL(0, r.scopes());
}
