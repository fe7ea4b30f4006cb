// RateLimiter: token buckets for requests and tokens per minute and for requests in flight,
// per key and per tenant together; refusals name the limit and when to retry; settling gives
// back slots and the reservation and charges what was used (a debt when more than reserved);
// n choices hold n slots; a clock going backwards refills nothing; idle scopes are pruned.
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
  CHECK_TRUE(r.admit(s, 10, 1, 0.0).ok);
  CHECK_TRUE(r.admit(s, 10, 1, 0.0).ok);
  Admission no = r.admit(s, 10, 1, 0.0);
  CHECK_FALSE(no.ok);
  CHECK_TRUE(no.refused_by.find("requests per minute of key:a") != std::string::npos);
  DOUBLES_EQUAL(30.0, no.retry_after_s, 1e-6);  // one request refills in 60 / 2 s
  LONGS_EQUAL(2, no.headers.limit_requests);
  LONGS_EQUAL(0, no.headers.remaining_requests);
  CHECK_FALSE(r.admit(s, 10, 1, 29.0).ok);
  CHECK_TRUE(r.admit(s, 10, 1, 30.5).ok);
}

TEST(RateLimiter, TokensAreReservedAndUnusedOnesComeBack) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"tenant:t", Limits{.tpm = 1000}}};
  Admission a = r.admit(s, 600, 1, 0.0);  // max_tokens
  CHECK_TRUE(a.ok);
  LONGS_EQUAL(400, a.headers.remaining_tokens);
  CHECK_FALSE(r.admit(s, 600, 1, 0.0).ok);
  r.settle(a.ticket, 100, 0.0);  // used only 100 of its reservation
  CHECK_TRUE(r.admit(s, 600, 1, 0.0).ok);
  // A request larger than a whole minute of tokens still runs (on a full bucket).
  RateLimiter big;
  CHECK_TRUE(big.admit(s, 5000, 1, 0.0).ok);
}

TEST(RateLimiter, ConcurrencyCountsRequestsInFlight) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"key:a", Limits{.concurrency = 1}}};
  Admission a = r.admit(s, 1, 1, 0.0);
  CHECK_TRUE(a.ok);
  Admission b = r.admit(s, 1, 1, 0.0);
  CHECK_FALSE(b.ok);
  CHECK_TRUE(b.refused_by.find("concurrent") != std::string::npos);
  r.settle(a.ticket, 0, 0.1);
  CHECK_TRUE(r.admit(s, 1, 1, 0.1).ok);
  r.settle(12345, 0, 0.2);  // unknown tickets are ignored
}

TEST(RateLimiter, KeyAndTenantBothApplyAndARefusalTakesNothing) {
  RateLimiter r;
  const RateScope tenant{"tenant:t", Limits{.rpm = 3}};
  const std::vector<RateScope> k1 = {{"key:1", Limits{.rpm = 2}}, tenant};
  const std::vector<RateScope> k2 = {{"key:2", Limits{}}, tenant};
  CHECK_TRUE(r.admit(k1, 1, 1, 0).ok);
  CHECK_TRUE(r.admit(k1, 1, 1, 0).ok);
  Admission no = r.admit(k1, 1, 1, 0);  // key 1 is out; the tenant has one left
  CHECK_FALSE(no.ok);
  CHECK_TRUE(no.refused_by.find("key:1") != std::string::npos);
  CHECK_TRUE(r.admit(k2, 1, 1, 0).ok);  // so key 2 gets it
  Admission t = r.admit(k2, 1, 1, 0);
  CHECK_FALSE(t.ok);
  CHECK_TRUE(t.refused_by.find("tenant:t") != std::string::npos);
}

TEST(RateLimiter, NoLimitsMeansNoRefusalAndIdleScopesArePruned) {
  RateLimiter r;
  for (int i = 0; i < 1000; ++i) r.settle(r.admit({{"key:free", Limits{}}}, 1 << 20, 1, i).ticket, 1 << 20, i);
  LONGS_EQUAL(1, r.scopes());
  r.prune(5000.0, 600);
  LONGS_EQUAL(0, r.scopes());
}

// Regression: with n x max_tokens above the TPM the reservation was capped at the TPM and the
// whole cap refunded at the end, so such requests were charged nothing.
TEST(RateLimiter, UseBeyondTheReservationIsChargedAsADebt) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"tenant:t", Limits{.tpm = 1000}}};
  Admission a = r.admit(s, 16 * 4096, 16, 0.0);  // n = 16, max_tokens = 4096: capped at 1000
  CHECK_TRUE(a.ok);
  r.settle(a.ticket, 3000, 0.0);  // it used 3000
  Admission b = r.admit(s, 10, 1, 0.0);
  CHECK_FALSE(b.ok);  // 2000 in debt
  DOUBLES_EQUAL((2000.0 + 10.0) * 60.0 / 1000.0, b.retry_after_s, 1e-6);
  CHECK_FALSE(r.admit(s, 10, 1, 120.0).ok);  // refilled 2000 by now: at 0, still short of 10
  CHECK_TRUE(r.admit(s, 10, 1, 121.0).ok);
}

TEST(RateLimiter, AllChoicesCountAsRequestsInFlight) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"key:a", Limits{.concurrency = 4}}};
  Admission a = r.admit(s, 1, 3, 0.0);
  CHECK_TRUE(a.ok);
  Admission b = r.admit(s, 1, 2, 0.0);
  CHECK_FALSE(b.ok);
  CHECK_TRUE(b.refused_by.find("one per choice") != std::string::npos);
  CHECK_TRUE(r.admit(s, 1, 1, 0.0).ok);
  CHECK_FALSE(r.admit(s, 1, 5, 0.0).ok);  // more choices than the limit never fit
  r.settle(a.ticket, 0, 0.0);
  CHECK_TRUE(r.admit(s, 1, 3, 0.0).ok);
}

TEST(RateLimiter, AClockGoingBackwardsRefillsNothing) {
  RateLimiter r;
  const std::vector<RateScope> s = {{"key:a", Limits{.rpm = 1, .tpm = 100}}};
  CHECK_TRUE(r.admit(s, 100, 1, 1000.0).ok);
  CHECK_FALSE(r.admit(s, 1, 1, 10.0).ok);     // time jumped back: nothing refilled
  CHECK_FALSE(r.admit(s, 1, 1, 1030.0).ok);   // half a minute after the first: half refilled
  CHECK_TRUE(r.admit(s, 1, 1, 1061.0).ok);
}
