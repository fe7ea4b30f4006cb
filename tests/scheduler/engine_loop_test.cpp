// The engine loop: the scheduler driving the real forward pass. Every request run in a
// batch must generate what it generates alone, with bit-identical logits at every sampled
// position (batch invariance), also through chunked prefill, prefix-cache hits and
// preemption; cancellation must give every block back. The solo reference runs through
// engine::Session, a different path (its own blocks, whole-prompt batches). Unit groups
// use a generated tiny model; Model* groups use stories260K (../shared) and models from
// $SUPERNODE_TEST_MODELS (make-bench-model output), skipping with a message when absent.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "supernode/base/check.h"
#include "supernode/engine/model.h"
#include "supernode/engine/model_gen.h"
#include "supernode/engine/sampling.h"
#include "supernode/scheduler/engine_loop.h"
#include "supernode/storage/env.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::scheduler;
using sn::engine::Model;
using sn::engine::SamplingParams;

namespace {

void check_ok(const sn::Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

std::unique_ptr<Model> tiny_model() {
  sn::Result<std::string> bytes = sn::engine::generate_tiny_model({});
  SN_CHECK(bytes.ok()) << bytes.status().to_string();
  sn::Result<sn::engine::GgufFile> f = sn::engine::GgufFile::from_bytes("tiny.gguf", *bytes);
  SN_CHECK(f.ok()) << f.status().to_string();
  sn::Result<std::unique_ptr<Model>> m = Model::from_gguf(std::move(*f));
  SN_CHECK(m.ok()) << m.status().to_string();
  return std::move(*m);
}

std::unique_ptr<Model> load(const std::string& path) {
  sn::Result<std::unique_ptr<Model>> m = Model::load(path);
  SN_CHECK(m.ok()) << m.status().to_string();
  return std::move(*m);
}

// A model file from $SUPERNODE_TEST_MODELS, or nullopt with a skip message.
std::optional<std::string> test_model(const std::string& name) {
  const char* env = std::getenv("SUPERNODE_TEST_MODELS");
  const std::string path = std::string(env != nullptr ? env : "build/models") + "/" + name;
  if (!std::filesystem::exists(path)) {
    sn::testing::skip(path + " not found (set SUPERNODE_TEST_MODELS; make-bench-model writes it)");
    return std::nullopt;
  }
  return path;
}

struct Backend {
  explicit Backend(int threads) : pool({.n_threads = threads, .pin = false}), be(pool, sn::hal::best_isa()) {}
  sn::hal::ThreadPool pool;
  sn::hal::CpuBackend be;
};

std::vector<int32_t> random_tokens(const Model& m, size_t n, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    t[i] = static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(m.config().n_vocab));
  }
  return t;
}

using LogitsByPosition = std::map<int32_t, std::vector<float>>;

struct Generation {
  std::vector<int32_t> tokens;
  LogitsByPosition logits;  // keyed by the position the sampled token takes
};

// The request alone, through engine::Session, sampled by its own Sampler.
Generation solo(const Model& m, sn::hal::CpuBackend& be, const GenerationRequest& r, const std::vector<int32_t>& eog) {
  Generation g;
  sn::engine::Session session(m, be, static_cast<int32_t>(r.prompt.size()) + r.max_tokens);
  sn::engine::Sampler sampler(r.sampling);
  std::vector<int32_t> history = r.prompt;
  std::vector<float> logits;
  check_ok(session.eval(r.prompt, &logits));
  while (static_cast<int32_t>(g.tokens.size()) < r.max_tokens) {
    g.logits[session.n_past()] = logits;
    const int32_t t = sampler.sample(logits, history);
    g.tokens.push_back(t);
    history.push_back(t);
    if (!r.ignore_eos && std::find(eog.begin(), eog.end(), t) != eog.end()) break;
    if (static_cast<int32_t>(g.tokens.size()) == r.max_tokens) break;
    check_ok(session.eval(std::span<const int32_t>(&t, 1), &logits));
  }
  return g;
}

// Runs the loop until idle, collecting every request's tokens and observed logits.
struct Driver {
  Driver(const Model& m, sn::hal::CpuBackend& be, const SchedulerConfig& config) : loop(m, be, config, clock) {
    loop.set_logits_observer([this](RequestId id, int32_t position, std::span<const float> logits) {
      std::vector<float>& slot = gen[id].logits[position];
      CHECK_TRUE_TEXT(slot.empty(), ("request " + std::to_string(id) + " sampled position " + std::to_string(position) +
                                     " twice")
                                        .c_str());
      slot.assign(logits.begin(), logits.end());
    });
  }

  void drain(int max_steps = 100000) {
    int n = 0;
    while (loop.has_work()) {
      sn::Result<std::vector<RequestEvent>> events = loop.step();
      check_ok(events.status());
      for (const RequestEvent& ev : *events) {
        if (ev.token) gen[ev.id].tokens.push_back(*ev.token);
        if (ev.finish) metrics[ev.id] = ev.metrics;
      }
      check_ok(loop.scheduler().check_invariants());
      CHECK_TRUE_TEXT(++n < max_steps, "the loop made no progress");
    }
    const KvPoolStats st = loop.scheduler().kv().pool().stats();
    LONGS_EQUAL(0, st.blocks_used);
    LONGS_EQUAL(st.blocks_total, st.blocks_free);
  }

  ManualClock clock;
  EngineLoop loop;
  std::map<RequestId, Generation> gen;
  std::map<RequestId, RequestMetrics> metrics;
};

// Each request's tokens equal its solo tokens, and the logits at every sampled position
// are bit-identical (within a preempted request, positions recomputed after resumption
// are compared too, since their first computation never sampled).
void check_equals_solo(const Model& m, sn::hal::CpuBackend& be, const std::vector<GenerationRequest>& reqs,
                       const std::map<RequestId, Generation>& got, const std::vector<int32_t>& eog) {
  const size_t n_vocab = static_cast<size_t>(m.config().n_vocab);
  for (const GenerationRequest& r : reqs) {
    const Generation ref = solo(m, be, r, eog);
    const std::string what = "request " + std::to_string(r.id) + " (prompt " + std::to_string(r.prompt.size()) + ")";
    auto it = got.find(r.id);
    CHECK_TRUE_TEXT(it != got.end(), (what + " produced nothing").c_str());
    const Generation& g = it->second;
    CHECK_TRUE_TEXT(g.tokens == ref.tokens, (what + ": tokens differ from the solo run").c_str());
    LONGS_EQUAL_TEXT(ref.logits.size(), g.logits.size(), what.c_str());
    for (const auto& [pos, logits] : ref.logits) {
      auto jt = g.logits.find(pos);
      CHECK_TRUE_TEXT(jt != g.logits.end(), (what + ": no logits at position " + std::to_string(pos)).c_str());
      LONGS_EQUAL(n_vocab, jt->second.size());
      CHECK_EQUAL_TEXT(0, std::memcmp(logits.data(), jt->second.data(), n_vocab * sizeof(float)),
                       (what + ": logits differ at position " + std::to_string(pos)).c_str());
    }
  }
}

// Sixteen requests of mixed prompt lengths (3..120), submitted together.
std::vector<GenerationRequest> mixed_requests(const Model& m, int32_t max_tokens, const SamplingParams& sampling) {
  std::vector<GenerationRequest> reqs;
  const int32_t lengths[16] = {3, 120, 17, 64, 5, 33, 96, 8, 47, 111, 16, 71, 4, 29, 88, 52};
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r;
    r.id = static_cast<RequestId>(i + 1);
    r.prompt = random_tokens(m, static_cast<size_t>(lengths[i]), static_cast<uint32_t>(i + 1));
    r.max_tokens = max_tokens + i % 3;
    r.sampling = sampling;
    r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    r.ignore_eos = true;
    r.tenant = "t" + std::to_string(i % 3);
    r.cache_salt = r.tenant;
    reqs.push_back(r);
  }
  return reqs;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// `n` greedy requests of tenant acme: one 80-token prefix (five blocks), 6 distinct tokens
// after it, 8 tokens to generate.
std::vector<GenerationRequest> shared_prefix_requests(const Model& m, int n) {
  const std::vector<int32_t> prefix = random_tokens(m, 80, 7);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = static_cast<RequestId>(i + 1);
    r.prompt = prefix;
    const std::vector<int32_t> suffix = random_tokens(m, 6, static_cast<uint32_t>(100 + i));
    r.prompt.insert(r.prompt.end(), suffix.begin(), suffix.end());
    r.max_tokens = 8;
    r.sampling = greedy();
    r.ignore_eos = true;
    r.tenant = "acme";
    r.cache_salt = "acme";
    reqs.push_back(r);
  }
  return reqs;
}

SchedulerConfig config_for(int32_t num_blocks, int32_t budget) {
  SchedulerConfig c;
  c.model_id = "test-model";
  c.kv.num_blocks = num_blocks;
  c.kv.block_size = 16;
  c.max_num_batched_tokens = budget;
  return c;
}

void sixteen_mixed_equal_solo(const Model& m, int32_t max_tokens, int32_t budget) {
  Backend b(2);
  const std::vector<GenerationRequest> reqs = mixed_requests(m, max_tokens, greedy());
  Driver d(m, b.be, config_for(256, budget));
  for (const GenerationRequest& r : reqs) check_ok(d.loop.add(r));
  d.drain();
  check_equals_solo(m, b.be, reqs, d.gen, d.loop.eog_token_ids());
  CHECK_TRUE(d.loop.stats().steps > 0);
}

void preemption_equals_solo(const Model& m, bool tiers = false) {
  Backend b(2);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest r;
    r.id = static_cast<RequestId>(i + 1);
    r.prompt = random_tokens(m, static_cast<size_t>(30 + 7 * i), static_cast<uint32_t>(50 + i));
    r.max_tokens = 24;
    r.sampling = greedy();
    r.ignore_eos = true;
    reqs.push_back(r);
  }
  // 12 blocks of 16: each request needs 4-5 blocks at its end, so five cannot run together.
  Driver d(m, b.be, config_for(12, 48));
  if (tiers) check_ok(d.loop.enable_tiers(sn::storage::posix_env(), {.host_bytes = 64ull << 20}));
  for (const GenerationRequest& r : reqs) check_ok(d.loop.add(r));
  d.drain();
  CHECK_TRUE_TEXT(d.loop.scheduler().stats().preemptions > 0, "the pool was not small enough to preempt");
  if (tiers) CHECK_TRUE(d.loop.tiers()->stats().host.demotions > 0);
  check_equals_solo(m, b.be, reqs, d.gen, d.loop.eog_token_ids());
}

}  // namespace

TEST_GROUP(EngineLoop){};

TEST(EngineLoop, SixteenMixedRequestsEqualTheirSoloRunsBitForBit) {
  std::unique_ptr<Model> m = tiny_model();
  sixteen_mixed_equal_solo(*m, 10, 64);
}

TEST(EngineLoop, SeededSamplingInABatchEqualsSamplingAlone) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(2);
  SamplingParams p;
  p.temperature = 0.9f;
  p.repeat_penalty = 1.1f;
  std::vector<GenerationRequest> reqs = mixed_requests(*m, 12, p);
  reqs.resize(6);
  Driver d(*m, b.be, config_for(128, 40));
  for (const GenerationRequest& r : reqs) check_ok(d.loop.add(r));
  d.drain();
  check_equals_solo(*m, b.be, reqs, d.gen, d.loop.eog_token_ids());
}

TEST(EngineLoop, PrefixHitComputesFewerTokensAndGeneratesTheSame) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(2);
  const std::vector<GenerationRequest> reqs = shared_prefix_requests(*m, 2);
  Driver d(*m, b.be, config_for(64, 512));
  check_ok(d.loop.add(reqs[0]));
  d.drain();
  const int64_t cold = d.loop.stats().tokens_computed;
  check_ok(d.loop.add(reqs[1]));
  d.drain();
  const int64_t warm = d.loop.stats().tokens_computed - cold;
  LONGS_EQUAL(0, d.metrics[1].num_cached_tokens);
  LONGS_EQUAL(80, d.metrics[2].num_cached_tokens);  // five full blocks of the shared prefix
  // Cold: 86 prompt tokens + 7 fed-back outputs; warm: the 6 after the hit + 7.
  LONGS_EQUAL(86 + 7, cold);
  LONGS_EQUAL(6 + 7, warm);
  check_equals_solo(*m, b.be, reqs, d.gen, d.loop.eog_token_ids());

  // Another tenant's salt never hits.
  GenerationRequest other = reqs[1];
  other.id = 3;
  other.tenant = "globex";
  other.cache_salt = "globex";
  check_ok(d.loop.add(other));
  d.drain();
  LONGS_EQUAL(0, d.metrics[3].num_cached_tokens);
  CHECK_TRUE(d.gen[3].tokens == d.gen[2].tokens);
}

// A prefix demoted to host RAM, then to disk only, comes back bit for bit: the requests that
// reuse it produce the logits of their solo runs, while computing only their suffixes.
TEST(EngineLoop, PrefixFromHostRamAndDiskGivesBitIdenticalLogits) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(2);
  sn::testing::TempDir dir;
  const std::vector<GenerationRequest> reqs = shared_prefix_requests(*m, 3);
  Driver d(*m, b.be, config_for(64, 512));
  check_ok(d.loop.enable_tiers(sn::storage::posix_env(),
                               {.host_bytes = 16ull << 20, .disk_dirs = {dir.path()}, .disk_bytes_per_dir = 64ull << 20}));
  check_ok(d.loop.add(reqs[0]));
  d.drain();
  const int64_t cold = d.loop.stats().tokens_computed;
  CHECK_TRUE(d.loop.spill_cached_blocks() >= 5);
  check_ok(d.loop.add(reqs[1]));
  d.drain();
  LONGS_EQUAL(80, d.metrics[2].num_cached_tokens);
  LONGS_EQUAL(6 + 7, d.loop.stats().tokens_computed - cold);
  d.loop.spill_cached_blocks();
  d.loop.tiers()->drop_host();
  check_ok(d.loop.add(reqs[2]));
  d.drain();
  LONGS_EQUAL(80, d.metrics[3].num_cached_tokens);
  LONGS_EQUAL(2 * (6 + 7), d.loop.stats().tokens_computed - cold);
  const KvTierStats ts = d.loop.tiers()->stats();
  LONGS_EQUAL(5, ts.disk.promotions);
  LONGS_EQUAL(10, ts.host.promotions);
  LONGS_EQUAL(1, d.loop.scheduler().stats().fetches);
  check_equals_solo(*m, b.be, reqs, d.gen, d.loop.eog_token_ids());
}

TEST(EngineLoop, PreemptionWithHostRamTierStillEqualsSoloRuns) {
  std::unique_ptr<Model> m = tiny_model();
  preemption_equals_solo(*m, /*tiers=*/true);
}

TEST(EngineLoop, CancellationFreesEveryBlock) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(2);
  std::vector<GenerationRequest> reqs = mixed_requests(*m, 40, greedy());
  Driver d(*m, b.be, config_for(64, 64));
  for (const GenerationRequest& r : reqs) check_ok(d.loop.add(r));
  for (int i = 0; i < 5; ++i) check_ok(d.loop.step().status());
  const KvPoolStats busy = d.loop.scheduler().kv().pool().stats();
  CHECK_TRUE(busy.blocks_used > 0);
  for (const GenerationRequest& r : reqs) check_ok(d.loop.cancel(r.id));
  CHECK_FALSE(d.loop.has_work());
  CHECK_TRUE(sn::Status::Code::kNotFound == d.loop.cancel(1).code());
  const KvPoolStats st = d.loop.scheduler().kv().pool().stats();
  LONGS_EQUAL(0, st.blocks_used);
  LONGS_EQUAL(st.blocks_total, st.blocks_free);
  check_ok(d.loop.scheduler().check_invariants());
  // A cancelled id may be reused at once and generates as if new.
  GenerationRequest again = reqs[3];
  d.gen.clear();
  check_ok(d.loop.add(again));
  d.drain();
  check_equals_solo(*m, b.be, {again}, d.gen, d.loop.eog_token_ids());
}

TEST(EngineLoop, PreemptionWithATinyPoolStillEqualsSoloRuns) {
  std::unique_ptr<Model> m = tiny_model();
  preemption_equals_solo(*m);
}

TEST(EngineLoop, StopsAtEndOfGenerationUnlessIgnored) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(1);
  Driver d(*m, b.be, config_for(32, 64));
  CHECK_FALSE(d.loop.eog_token_ids().empty());
  GenerationRequest r;
  r.id = 1;
  r.prompt = random_tokens(*m, 5, 3);
  r.max_tokens = 6;
  r.sampling = greedy();
  // Whatever the model generates first becomes the stop token: generation ends after it.
  Generation ref = solo(*m, b.be, r, {});
  r.extra_stop_token_ids = {ref.tokens[0]};
  r.ignore_eos = true;
  check_ok(d.loop.add(r));
  d.drain();
  LONGS_EQUAL(1, d.gen[1].tokens.size());
  CHECK_TRUE(d.metrics[1].num_output_tokens == 1);
}

TEST(EngineLoop, AddRejectsBadRequests) {
  std::unique_ptr<Model> m = tiny_model();
  Backend b(1);
  Driver d(*m, b.be, config_for(8, 64));
  GenerationRequest r;
  r.id = 1;
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());  // empty prompt
  r.prompt = {1, m->config().n_vocab};
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());  // outside the vocabulary
  r.prompt = {1, 2, 3};
  r.sampling.top_p = 2.0f;
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());
  r.sampling = greedy();
  r.max_tokens = 0;
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());
  r.max_tokens = 200;  // 203 tokens can never fit 8 blocks of 16
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());
  r.max_tokens = 4;
  check_ok(d.loop.add(r));
  CHECK_TRUE(sn::Status::Code::kInvalidArgument == d.loop.add(r).code());  // id live
  d.drain();
}

// ---- real models ----

TEST_GROUP(ModelEngineLoop){};

TEST(ModelEngineLoop, Stories260KSixteenMixedRequestsEqualSoloBitForBit) {
  std::optional<std::string> path = sn::testing::shared_file("models/stories260K.gguf");
  if (!path) return;
  std::unique_ptr<Model> m = load(*path);
  sixteen_mixed_equal_solo(*m, 16, 96);
}

TEST(ModelEngineLoop, Stories260KPreemptionEqualsSolo) {
  std::optional<std::string> path = sn::testing::shared_file("models/stories260K.gguf");
  if (!path) return;
  std::unique_ptr<Model> m = load(*path);
  preemption_equals_solo(*m);
}

TEST(ModelEngineLoop, TinyLlamaQ4_0SixteenMixedRequestsEqualSoloBitForBit) {
  std::optional<std::string> path = test_model("tiny-llama-q4_0.gguf");
  if (!path) return;
  std::unique_ptr<Model> m = load(*path);
  sixteen_mixed_equal_solo(*m, 12, 128);
}

TEST(ModelEngineLoop, BenchTinyllama11BQ4_0SixteenMixedRequestsEqualSoloBitForBit) {
  std::optional<std::string> path = test_model("bench-tinyllama-1.1b-q4_0.gguf");
  if (!path) return;
  std::unique_ptr<Model> m = load(*path);
  sixteen_mixed_equal_solo(*m, 4, 256);
}
