// The scheduler: chunked prefill, budgets, decode first, prefix hits and salt isolation,
// preemption and resumption, cancellation, the busy queue, fairness, priority classes,
// metrics, and a randomized run checking every invariant after every step. The engine is
// FakeEngine (fake_engine.h), whose sampled tokens depend on the KV it reads back.
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fake_engine.h"
#include "supernode/scheduler/kv_tiers.h"
#include "supernode/scheduler/scheduler.h"
#include "supernode/storage/env.h"
#include "supernode/storage/fault_injection_env.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::scheduler;
using sn::scheduler::testing::FakeEngine;
using sn::scheduler::testing::reference_stream;

namespace {

std::vector<int32_t> tokens(int32_t n, int32_t start) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back((start + i * 7) % 900 + 1);
  return v;
}

void check_ok(const sn::Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

// Drives a Scheduler with a FakeEngine, collecting every request's tokens and finish.
struct Harness {
  explicit Harness(SchedulerConfig config)
      : config(std::move(config)), s(this->config, clock), engine(this->config.kv.num_blocks, this->config.kv.block_size) {}

  void add(Request r, bool expect_reference = true) {
    if (expect_reference) reference[r.id] = reference_stream(r.prompt, r.max_tokens, r.stop_token_ids);
    check_ok(s.add_request(std::move(r)));
  }

  // Lower tiers under the fake engine's blocks: `host_blocks` blocks of host RAM, and the
  // disk directory `dir` unless empty.
  void attach(uint64_t host_blocks, const std::string& dir = "", sn::storage::Env& env = sn::storage::posix_env()) {
    KvTiersConfig c;
    c.host_bytes = host_blocks * engine.block_bytes();
    c.model_id = config.model_id;
    if (!dir.empty()) {
      c.disk_dirs = {dir};
      c.disk_bytes_per_dir = 64 << 20;
    }
    sn::Result<std::unique_ptr<KvTiers>> t = KvTiers::open(env, c, engine);
    check_ok(t.status());
    tiers = std::move(*t);
    s.attach_tiers(tiers.get());
  }

  // One schedule/run/update round; `before_update` runs between the engine and the update.
  SchedulerOutput step(const std::function<void(SchedulerOutput&, StepResult&)>& before_update = {}) {
    SchedulerOutput out = s.schedule();
    if (out.sequences.empty() && tiers && s.stats().fetching > 0) (void)tiers->wait_completed(20'000);
    CHECK_TRUE(out.num_tokens <= config.max_num_batched_tokens);
    StepResult result = engine.run(out);
    if (before_update) before_update(out, result);
    clock.advance_ns(1000);
    for (const RequestEvent& ev : s.update_from_output(out, result)) {
      if (ev.token) {
        std::vector<int32_t>& got = outputs[ev.id];
        got.push_back(*ev.token);
        auto ref = reference.find(ev.id);
        if (ref != reference.end()) {
          CHECK_TRUE_TEXT(got.size() <= ref->second.size() && got.back() == ref->second[got.size() - 1],
                          ("request " + std::to_string(ev.id) + " diverged from its solo stream").c_str());
        }
      }
      if (ev.finish) {
        finished[ev.id] = *ev.finish;
        final_metrics[ev.id] = ev.metrics;
      }
    }
    check_ok(s.check_invariants());
    return out;
  }

  void drain(int max_steps = 10000) {
    int n = 0;
    while (s.has_work()) {
      step();
      CHECK_TRUE_TEXT(++n < max_steps, "scheduler made no progress");
    }
    KvPoolStats st = s.kv().pool().stats();
    LONGS_EQUAL(0, st.blocks_used);
    LONGS_EQUAL(st.blocks_total, st.blocks_free);
  }

  SchedulerConfig config;
  ManualClock clock;
  Scheduler s;
  FakeEngine engine;
  std::unique_ptr<KvTiers> tiers;
  std::map<RequestId, std::vector<int32_t>> reference;
  std::map<RequestId, std::vector<int32_t>> outputs;
  std::map<RequestId, FinishReason> finished;
  std::map<RequestId, RequestMetrics> final_metrics;
};

SchedulerConfig small_config() {
  return SchedulerConfig{.model_id = "test-model", .kv = {.num_blocks = 64, .block_size = 4},
                         .max_num_batched_tokens = 16, .max_num_seqs = 8, .max_waiting = 64};
}

Request req(RequestId id, std::vector<int32_t> prompt, int32_t max_tokens, std::string tenant = "t",
            PriorityClass prio = PriorityClass::kInteractive) {
  Request r;
  r.id = id;
  r.tenant = tenant;
  r.cache_salt = tenant;
  r.priority = prio;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  return r;
}

const ScheduledSequence* find_seq(const SchedulerOutput& out, RequestId id) {
  for (const ScheduledSequence& s : out.sequences) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

}  // namespace

TEST_GROUP(Scheduler){};

TEST(Scheduler, ChunkedPrefillAcrossSteps) {
  Harness h(small_config());
  h.add(req(1, tokens(40, 1), 3));
  SchedulerOutput a = h.step();
  LONGS_EQUAL(1, a.sequences.size());
  LONGS_EQUAL(0, a.sequences[0].start_position);
  LONGS_EQUAL(16, a.sequences[0].tokens.size());
  CHECK_FALSE(a.sequences[0].want_token);
  SchedulerOutput b = h.step();
  LONGS_EQUAL(16, b.sequences[0].start_position);
  CHECK_FALSE(b.sequences[0].want_token);
  SchedulerOutput c = h.step();
  LONGS_EQUAL(32, c.sequences[0].start_position);
  LONGS_EQUAL(8, c.sequences[0].tokens.size());
  CHECK_TRUE(c.sequences[0].want_token);
  LONGS_EQUAL(10, c.sequences[0].block_table.size());
  // Then one token per step.
  SchedulerOutput d = h.step();
  LONGS_EQUAL(40, d.sequences[0].start_position);
  LONGS_EQUAL(1, d.sequences[0].tokens.size());
  h.drain();
  CHECK_TRUE(h.finished.at(1) == FinishReason::kLength);
  CHECK_TRUE(h.outputs.at(1) == h.reference.at(1));
}

TEST(Scheduler, DecodeFirstThenPrefillInTheRemainingBudget) {
  Harness h(small_config());
  h.add(req(1, tokens(4, 1), 10));
  h.add(req(2, tokens(4, 100), 10));
  h.step();  // both prefilled in one step (8 tokens)
  h.add(req(3, tokens(40, 200), 2));
  SchedulerOutput out = h.step();
  LONGS_EQUAL(3, out.sequences.size());
  LONGS_EQUAL(1, out.sequences[0].id);
  LONGS_EQUAL(1, out.sequences[0].tokens.size());
  LONGS_EQUAL(2, out.sequences[1].id);
  LONGS_EQUAL(3, out.sequences[2].id);
  LONGS_EQUAL(14, out.sequences[2].tokens.size());
  LONGS_EQUAL(16, out.num_tokens);
  h.drain();
  for (RequestId id = 1; id <= 3; ++id) CHECK_TRUE(h.outputs.at(id) == h.reference.at(id));
}

TEST(Scheduler, TokenBudgetAndSequenceCapAreRespected) {
  SchedulerConfig c = small_config();
  c.max_num_seqs = 3;
  Harness h(c);
  for (RequestId id = 1; id <= 10; ++id) h.add(req(id, tokens(9, static_cast<int32_t>(id) * 50), 4));
  for (int i = 0; i < 6; ++i) {
    SchedulerOutput out = h.step();
    CHECK_TRUE(out.num_tokens <= 16);
    CHECK_TRUE(out.sequences.size() <= 3);
    CHECK_TRUE(h.s.stats().running <= 3);
  }
  h.drain();
  LONGS_EQUAL(10, h.finished.size());
}

TEST(Scheduler, FinishesOnStopTokenLengthAndStopFlag) {
  Harness h(small_config());
  std::vector<int32_t> p = tokens(5, 3);
  std::vector<int32_t> ref = reference_stream(p, 10);
  Request stop_tok = req(1, p, 10);
  stop_tok.stop_token_ids = {ref[2]};
  h.add(stop_tok);
  h.add(req(2, tokens(5, 60), 2));
  h.add(req(3, tokens(5, 90), 10));
  h.step();
  h.step([](SchedulerOutput&, StepResult& r) {
    for (SequenceResult& s : r.sequences) s.stop = s.id == 3;
  });
  CHECK_TRUE(h.finished.at(3) == FinishReason::kStopFlag);
  LONGS_EQUAL(2, h.outputs.at(3).size());
  h.drain();
  CHECK_TRUE(h.finished.at(1) == FinishReason::kStopToken);
  LONGS_EQUAL(3, h.outputs.at(1).size());
  CHECK_TRUE(h.finished.at(2) == FinishReason::kLength);
  LONGS_EQUAL(2, h.outputs.at(2).size());
}

TEST(Scheduler, PrefixHitsWithinATenant) {
  Harness h(small_config());
  std::vector<int32_t> system = tokens(20, 5);
  std::vector<int32_t> p1 = system, p2 = system;
  p1.push_back(700);
  p2.push_back(701);
  p2.push_back(702);
  h.add(req(1, p1, 2, "acme"));
  h.drain();
  h.add(req(2, p2, 2, "acme"));
  SchedulerOutput out = h.step();
  LONGS_EQUAL(20, out.sequences[0].start_position);  // five full blocks from the cache
  h.drain();
  LONGS_EQUAL(20, h.final_metrics.at(2).num_cached_tokens);
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
  CHECK_TRUE(h.s.kv().pool().stats().hits >= 5);
}

TEST(Scheduler, SaltIsolatesTenantsUnlessShared) {
  Harness h(small_config());
  std::vector<int32_t> doc = tokens(24, 9);
  h.add(req(1, doc, 1, "acme"));
  h.drain();
  // Same tokens, another tenant: no hit.
  h.add(req(2, doc, 1, "globex"));
  SchedulerOutput out = h.step();
  LONGS_EQUAL(0, out.sequences[0].start_position);
  h.drain();
  LONGS_EQUAL(0, h.final_metrics.at(2).num_cached_tokens);
  // Two tenants that opt in to one shared salt do share.
  Request a = req(3, doc, 1, "acme");
  a.cache_salt = "shared:docs";
  h.add(a);
  h.drain();
  Request b = req(4, doc, 1, "initech");
  b.cache_salt = "shared:docs";
  h.add(b);
  h.drain();
  LONGS_EQUAL(20, h.final_metrics.at(4).num_cached_tokens);
}

TEST(Scheduler, PreemptionAndResumptionGiveTheSameStream) {
  SchedulerConfig c = small_config();
  c.kv.num_blocks = 10;
  c.max_num_batched_tokens = 32;
  Harness h(c);
  // Each needs up to 6 blocks to finish; three together cannot fit in 10.
  h.add(req(1, tokens(8, 1), 14));
  h.add(req(2, tokens(8, 300), 14, "t", PriorityClass::kBatch));
  h.add(req(3, tokens(8, 600), 14));
  h.drain();
  CHECK_TRUE(h.s.stats().preemptions > 0);
  int32_t preempted = 0;
  for (RequestId id = 1; id <= 3; ++id) {
    CHECK_TRUE(h.outputs.at(id) == h.reference.at(id));
    preempted += h.final_metrics.at(id).num_preemptions;
  }
  CHECK_TRUE(preempted > 0);
  // The batch request is the victim before the interactive ones.
  CHECK_TRUE(h.final_metrics.at(2).num_preemptions > 0);
  LONGS_EQUAL(0, h.final_metrics.at(1).num_preemptions);
}

TEST(Scheduler, CancellationFreesBlocksAtOnceAlsoMidStep) {
  Harness h(small_config());
  h.add(req(1, tokens(12, 1), 20));
  h.add(req(2, tokens(12, 50), 5));
  h.step();
  int32_t used_before = h.s.kv().pool().stats().blocks_used;
  bool saw_1 = false;
  h.step([&](SchedulerOutput& out, StepResult&) {
    CHECK_TRUE(find_seq(out, 1) != nullptr);
    check_ok(h.s.cancel(1));  // the client went away while the step ran
    CHECK_TRUE(h.s.kv().pool().stats().blocks_used < used_before);
    // Its id may be reused at once; the in-flight result must not leak into the new request.
    check_ok(h.s.add_request(req(1, tokens(3, 500), 2)));
    h.reference[1] = reference_stream(tokens(3, 500), 2);
    h.outputs.erase(1);
    saw_1 = true;
  });
  CHECK_TRUE(saw_1);
  CHECK_TRUE(h.s.cancel(99).code() == sn::Status::Code::kNotFound);
  h.drain();
  CHECK_TRUE(h.outputs.at(1) == h.reference.at(1));
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
  LONGS_EQUAL(1, h.s.stats().cancelled);
}

TEST(Scheduler, BusyWhenTheWaitingQueueIsFull) {
  SchedulerConfig c = small_config();
  c.max_waiting = 2;
  c.max_num_seqs = 1;
  Harness h(c);
  h.add(req(1, tokens(4, 1), 3));
  h.add(req(2, tokens(4, 2), 3));
  sn::Status busy = h.s.add_request(req(3, tokens(4, 3), 3));
  CHECK_TRUE(busy.code() == sn::Status::Code::kResourceExhausted);
  CHECK_TRUE(busy.message().find("waiting queue is full") != std::string::npos);
  LONGS_EQUAL(1, h.s.stats().rejected_busy);
  h.step();  // request 1 is admitted: room for one more
  h.add(req(3, tokens(4, 3), 3));
  h.drain();
  LONGS_EQUAL(3, h.finished.size());
  // Invalid requests are invalid, not busy.
  CHECK_TRUE(h.s.add_request(req(9, {}, 3)).code() == sn::Status::Code::kInvalidArgument);
  CHECK_TRUE(h.s.add_request(req(9, tokens(4, 1), 0)).code() == sn::Status::Code::kInvalidArgument);
  CHECK_TRUE(h.s.add_request(req(9, tokens(300, 1), 4)).code() == sn::Status::Code::kInvalidArgument);
}

TEST(Scheduler, TenantsGetTheirWeightedShare) {
  SchedulerConfig c = small_config();
  c.kv.num_blocks = 256;
  c.max_num_seqs = 4;
  c.max_waiting = 1000;
  Harness h(c);
  h.s.set_tenant_weight("a", 1);
  h.s.set_tenant_weight("b", 3);
  for (RequestId i = 0; i < 200; ++i) {
    h.add(req(2 * i + 1, tokens(24, static_cast<int32_t>(i) * 13), 4, "a"));
    h.add(req(2 * i + 2, tokens(24, static_cast<int32_t>(i) * 17 + 5), 4, "b"));
  }
  for (int i = 0; i < 400; ++i) h.step();
  CHECK_TRUE(h.s.tenant_stats("a").waiting > 0 && h.s.tenant_stats("b").waiting > 0);  // both stayed backlogged
  double a = static_cast<double>(h.s.tenant_stats("a").tokens_scheduled);
  double b = static_cast<double>(h.s.tenant_stats("b").tokens_scheduled);
  double ratio = b / a;
  CHECK_TRUE_TEXT(ratio > 2.6 && ratio < 3.4, ("b/a = " + std::to_string(ratio)).c_str());
}

TEST(Scheduler, AFloodingTenantCannotStarveAnother) {
  SchedulerConfig c = small_config();
  c.kv.num_blocks = 256;
  c.max_waiting = 1000;
  Harness h(c);
  for (RequestId i = 1; i <= 300; ++i) h.add(req(i, tokens(16, static_cast<int32_t>(i)), 8, "flood"));
  for (int i = 0; i < 20; ++i) h.step();
  h.add(req(1000, tokens(16, 999), 8, "quiet"));
  int steps = 0;
  while (h.finished.count(1000) == 0) {
    h.step();
    CHECK_TRUE(++steps < 40);
  }
  CHECK_TRUE(h.s.tenant_stats("flood").waiting > 200);
  CHECK_TRUE(h.outputs.at(1000) == h.reference.at(1000));
}

TEST(Scheduler, InteractiveFirstButBatchNotStarved) {
  SchedulerConfig c = small_config();
  c.kv.num_blocks = 256;
  c.max_num_seqs = 2;
  c.max_waiting = 2000;
  Harness h(c);
  for (RequestId i = 1; i <= 400; ++i) h.add(req(i, tokens(12, static_cast<int32_t>(i)), 4, "b", PriorityClass::kBatch));
  h.add(req(5000, tokens(12, 3), 4, "i"));
  SchedulerOutput first = h.step();
  LONGS_EQUAL(5000, first.sequences[0].id);  // arrived last, admitted first
  for (RequestId i = 1; i <= 400; ++i) h.add(req(10000 + i, tokens(12, static_cast<int32_t>(i) + 40), 4, "i"));
  for (int i = 0; i < 600; ++i) h.step();
  double bt = static_cast<double>(h.s.tenant_stats("b").tokens_scheduled);
  double it = static_cast<double>(h.s.tenant_stats("i").tokens_scheduled);
  CHECK_TRUE(h.s.tenant_stats("i").waiting > 0);  // interactive stayed backlogged throughout
  double share = bt / (bt + it);
  CHECK_TRUE_TEXT(share > 0.02 && share < 0.15, ("batch share " + std::to_string(share)).c_str());
}

TEST(Scheduler, FirstComeFirstServedIgnoresClasses) {
  SchedulerConfig c = small_config();
  c.fairness = FirstComeFirstServed{};
  c.max_num_seqs = 1;
  Harness h(c);
  h.add(req(1, tokens(4, 1), 2, "x", PriorityClass::kBatch));
  h.add(req(2, tokens(4, 9), 2, "y", PriorityClass::kInteractive));
  LONGS_EQUAL(1, h.step().sequences[0].id);
  h.drain();
}

TEST(Scheduler, MetricsComeFromTheInjectedClock) {
  Harness h(small_config());
  h.clock.advance_ns(5000);
  h.add(req(1, tokens(20, 1), 2));  // arrives at 5000
  h.step();                          // schedule at 5000, 16 tokens; update at 6000
  h.step();                          // 4 more + first token at 7000
  h.step();                          // second token, finish at 8000
  const RequestMetrics& m = h.final_metrics.at(1);
  LONGS_EQUAL(5000, m.arrival_ns);
  LONGS_EQUAL(5000, m.first_scheduled_ns);
  LONGS_EQUAL(7000, m.first_token_ns);
  LONGS_EQUAL(8000, m.finished_ns);
  LONGS_EQUAL(20, m.num_prompt_tokens);
  LONGS_EQUAL(2, m.num_output_tokens);
}

// Thousands of steps with random arrivals, cancels (also mid-step), stop flags, shared
// prefixes and salts, and a pool small enough to preempt often. After every step all
// invariants hold; every stream matches its solo run; at the end no block is leaked.
TEST(Scheduler, RandomizedStepsKeepEveryInvariant) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::mt19937 rng(seed);
    auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    SchedulerConfig c{.model_id = "rand", .kv = {.num_blocks = 24, .block_size = 4},
                      .max_num_batched_tokens = 12, .max_num_seqs = 5, .max_waiting = 8};
    if (seed == 3) c.kv.eviction = LruEviction{};
    // Seeds 4 and 5 add the lower tiers (host RAM only; host RAM and a disk with simulated
    // syncs): demotions, promotions and parked disk reads join the mix.
    sn::testing::TempDir dir;
    sn::storage::FaultInjectionEnv env(sn::storage::posix_env());
    Harness h(c);
    if (seed == 4) h.attach(6);
    if (seed == 5) h.attach(6, dir.path(), env);
    const std::vector<std::string> tenants = {"a", "b", "c"};
    h.s.set_tenant_weight("b", 2);
    std::vector<std::vector<int32_t>> prefixes = {tokens(8, 11), tokens(12, 23), {}};
    std::set<RequestId> live;
    std::map<RequestId, Request> requests;
    RequestId next_id = 1;
    int busy = 0, stopped = 0, cancelled = 0;
    for (int stepi = 0; stepi < 3000 || !live.empty(); ++stepi) {
      CHECK_TRUE_TEXT(stepi < 20000, "randomized run does not drain");
      if (stepi < 3000 && uni(0, 2) != 0) {
        Request r;
        r.id = next_id++;
        r.tenant = tenants[static_cast<size_t>(uni(0, 2))];
        r.cache_salt = r.tenant == "c" ? "a" : r.tenant;  // c opts in to a's salt
        r.priority = uni(0, 3) == 0 ? PriorityClass::kBatch : PriorityClass::kInteractive;
        r.prompt = prefixes[static_cast<size_t>(uni(0, 2))];
        for (int i = uni(1, 10); i > 0; --i) r.prompt.push_back(uni(1, 900));
        r.max_tokens = uni(1, 20);
        if (uni(0, 3) == 0) r.stop_token_ids = {uni(1, 996)};
        std::vector<int32_t> ref = reference_stream(r.prompt, r.max_tokens, r.stop_token_ids);
        sn::Status st = h.s.add_request(r);
        if (st.is_ok()) {
          live.insert(r.id);
          h.reference[r.id] = ref;
          requests[r.id] = r;
        } else {
          CHECK_TRUE(st.code() == sn::Status::Code::kResourceExhausted);
          ++busy;
        }
      }
      if (!live.empty() && uni(0, 40) == 0) {  // cancel between steps
        auto it = std::next(live.begin(), uni(0, static_cast<int>(live.size()) - 1));
        check_ok(h.s.cancel(*it));
        live.erase(it);
        ++cancelled;
      }
      h.step([&](SchedulerOutput& out, StepResult& result) {
        if (!out.sequences.empty() && uni(0, 30) == 0) {  // cancel mid-step
          RequestId id = out.sequences[static_cast<size_t>(uni(0, static_cast<int>(out.sequences.size()) - 1))].id;
          check_ok(h.s.cancel(id));
          live.erase(id);
          ++cancelled;
        }
        for (SequenceResult& r : result.sequences) {
          if (uni(0, 60) == 0) {
            r.stop = true;
            ++stopped;
          }
        }
      });
      for (auto it = live.begin(); it != live.end();) {
        if (h.finished.count(*it) != 0) {
          const Request& r = requests.at(*it);
          const std::vector<int32_t>& out = h.outputs[*it];
          switch (h.finished.at(*it)) {
            case FinishReason::kLength: LONGS_EQUAL(r.max_tokens, out.size()); break;
            case FinishReason::kStopToken: LONGS_EQUAL(r.stop_token_ids[0], out.back()); break;
            case FinishReason::kStopFlag: break;
          }
          it = live.erase(it);
        } else {
          ++it;
        }
      }
      LONGS_EQUAL(live.size(), static_cast<size_t>(h.s.stats().running + h.s.stats().waiting));
    }
    h.drain();
    SchedulerStats st = h.s.stats();
    KvPoolStats ps = h.s.kv().pool().stats();
    CHECK_TRUE(st.preemptions > 10);
    CHECK_TRUE(busy > 0 && stopped > 0 && cancelled > 0);
    CHECK_TRUE(ps.hits > 0 && ps.evictions > 0);
    LONGS_EQUAL(0, ps.blocks_used);
    if (h.tiers) {
      const KvTierStats ts = h.tiers->stats();
      CHECK_TRUE(st.tokens_from_tiers > 0 && ts.host.promotions > 0 && ts.host.demotions > 0);
      if (seed == 5) CHECK_TRUE(st.fetches > 0 && ts.disk.promotions > 0 && ts.disk.demotions > 0);
      LONGS_EQUAL(0, st.fetching);
    }
  }
}

// ---- lower tiers ----

TEST(Scheduler, ADemotedPrefixComesBackFromHostRam) {
  Harness h(small_config());
  h.attach(16);
  std::vector<int32_t> system = tokens(20, 5);
  std::vector<int32_t> p1 = system, p2 = system;
  p1.push_back(700);
  p2.push_back(701);
  h.add(req(1, p1, 3, "acme"));
  h.drain();
  CHECK_TRUE(h.s.evict_free_cached() >= 5);  // the prefix leaves tier 1
  LONGS_EQUAL(0, h.s.kv().pool().stats().blocks_cached);
  const int64_t promoted_before = h.engine.blocks_written();
  h.add(req(2, p2, 3, "acme"));
  SchedulerOutput out = h.step();
  LONGS_EQUAL(20, out.sequences[0].start_position);  // five blocks promoted, not computed
  LONGS_EQUAL(5, h.engine.blocks_written() - promoted_before);
  h.drain();
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
  LONGS_EQUAL(20, h.final_metrics.at(2).num_cached_tokens);
  LONGS_EQUAL(20, h.s.stats().tokens_from_tiers);
  // Promoted blocks are tier-1 cache entries again: the next request hits them there.
  h.add(req(3, p1, 2, "acme"));
  out = h.step();
  LONGS_EQUAL(20, out.sequences[0].start_position);
  LONGS_EQUAL(20, h.s.stats().tokens_from_tiers);
  h.drain();
}

TEST(Scheduler, LowerTiersKeepTenantsApart) {
  Harness h(small_config());
  h.attach(16);
  std::vector<int32_t> doc = tokens(24, 9);
  h.add(req(1, doc, 1, "acme"));
  h.drain();
  h.s.evict_free_cached();
  h.add(req(2, doc, 1, "globex"));
  h.drain();
  LONGS_EQUAL(0, h.final_metrics.at(2).num_cached_tokens);
  LONGS_EQUAL(0, h.s.stats().tokens_from_tiers);
  h.add(req(3, doc, 1, "acme"));
  h.drain();
  LONGS_EQUAL(20, h.final_metrics.at(3).num_cached_tokens);
}

TEST(Scheduler, APrefixOnDiskParksItsRequestWhileOthersRun) {
  sn::testing::TempDir dir;
  Harness h(small_config());
  h.attach(16, dir.path());
  std::vector<int32_t> system = tokens(20, 5);
  std::vector<int32_t> p1 = system, p2 = system;
  p1.push_back(700);
  p2.push_back(701);
  h.add(req(1, p1, 3, "acme"));
  h.drain();
  h.s.evict_free_cached();
  h.tiers->drop_host();  // flushes, then only the disk holds the prefix
  h.add(req(2, p2, 3, "acme"));
  h.add(req(3, tokens(6, 400), 3, "globex"));
  SchedulerOutput out = h.step();
  // 2 is parked for its disk reads; 3 runs meanwhile.
  CHECK_TRUE(find_seq(out, 2) == nullptr);
  CHECK_TRUE(find_seq(out, 3) != nullptr);
  LONGS_EQUAL(1, h.s.stats().fetching);
  LONGS_EQUAL(2, h.s.stats().waiting + h.s.stats().running);
  h.drain();
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
  CHECK_TRUE(h.outputs.at(3) == h.reference.at(3));
  LONGS_EQUAL(20, h.final_metrics.at(2).num_cached_tokens);
  LONGS_EQUAL(1, h.s.stats().fetches);
  const KvTierStats ts = h.tiers->stats();
  LONGS_EQUAL(5, ts.disk.promotions);
  LONGS_EQUAL(5, ts.host.promotions);
}

TEST(Scheduler, CancellingAParkedRequestForgetsIt) {
  sn::testing::TempDir dir;
  Harness h(small_config());
  h.attach(16, dir.path());
  std::vector<int32_t> p1 = tokens(21, 5);
  h.add(req(1, p1, 1, "acme"));
  h.drain();
  h.s.evict_free_cached();
  h.tiers->drop_host();
  h.add(req(2, p1, 2, "acme"), false);
  (void)h.step();
  LONGS_EQUAL(1, h.s.stats().fetching);
  check_ok(h.s.cancel(2));
  LONGS_EQUAL(0, h.s.stats().fetching);
  LONGS_EQUAL(0, h.s.stats().waiting);
  CHECK_FALSE(h.s.has_work());
  h.tiers->flush();
  (void)h.tiers->wait_completed(100'000);
  (void)h.step();  // the finished fetch of a cancelled request is ignored
  check_ok(h.s.check_invariants());
  // Its id is free for a new request, which parks no more (the blocks are in host RAM now).
  h.add(req(2, p1, 2, "acme"));
  h.drain();
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
}

TEST(Scheduler, APrefixOnDiskSurvivesARestart) {
  sn::testing::TempDir dir;
  std::vector<int32_t> system = tokens(20, 5);
  std::vector<int32_t> p1 = system, p2 = system;
  p1.push_back(700);
  p2.push_back(701);
  {
    Harness h(small_config());
    h.attach(16, dir.path());
    h.add(req(1, p1, 3, "acme"));
    h.drain();
    h.s.evict_free_cached();
  }  // the tiers finish their writes as they close
  Harness h(small_config());
  h.attach(16, dir.path());
  CHECK_TRUE(h.tiers->stats().disk.blocks >= 5);
  h.add(req(2, p2, 3, "acme"));
  h.drain();
  CHECK_TRUE(h.outputs.at(2) == h.reference.at(2));
  LONGS_EQUAL(20, h.final_metrics.at(2).num_cached_tokens);
  LONGS_EQUAL(5, h.tiers->stats().disk.promotions);
}
