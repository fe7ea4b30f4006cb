// The engine loop: the Scheduler connected to the engine. It owns a Scheduler, the paged KV
// storage (an engine::KvCache with the scheduler's block count and size: the scheduler hands
// out block ids, the loop never allocates from the cache itself), one engine::Forward, and
// each request's Sampler and stop tokens. step() is one round of continuous batching:
// schedule() -> one batched forward over every scheduled sequence (decodes and prefill
// chunks together, each through its own block table) -> one sampled token per sequence that
// wants one -> update_from_output() -> the events to stream. The daemon's engine thread
// drives it; `supernode serve-bench` drives it in-process.
//
//   SteadyClock clock;
//   EngineLoop loop(model, backend, {.model_id = "tinyllama-q4_0",
//                                    .kv = {.num_blocks = 512, .block_size = 16}}, clock);
//   Status st = loop.add({.id = 1, .prompt = tokens, .max_tokens = 64,
//                         .sampling = {.temperature = 0}, .tenant = "acme", .cache_salt = "acme"});
//   while (loop.has_work()) {
//     Result<std::vector<RequestEvent>> events = loop.step();
//     if (!events.ok()) { /* the step's requests were dropped; report and go on */ }
//     for (const RequestEvent& ev : *events) stream(ev);
//   }
//
// Thread safety: none. One thread (the engine thread) calls every method; the Model must
// outlive the loop and the backend must not be used by another thread during step().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/engine/model.h"
#include "supernode/engine/sampling.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/scheduler/clock.h"
#include "supernode/scheduler/kv_tiers.h"
#include "supernode/scheduler/scheduler.h"
#include "supernode/storage/env.h"

namespace sn::scheduler {

// One generation request as the loop takes it: tokens in, sampling chosen per request.
struct GenerationRequest {
  RequestId id = 0;               // unique among live requests
  std::vector<int32_t> prompt;    // REQUIRES: not empty, every id in [0, n_vocab)
  int32_t max_tokens = 16;        // REQUIRES: > 0
  engine::SamplingParams sampling;  // seed it for reproducible draws; temperature <= 0: greedy
  bool ignore_eos = false;        // else the tokenizer's end-of-generation tokens stop it
  std::vector<int32_t> extra_stop_token_ids;
  std::string tenant;
  PriorityClass priority = PriorityClass::kInteractive;
  std::string cache_salt;         // set by the server from the tenant, never by the client
  int32_t logprobs = -1;          // >= 0: report each token's logprob and this many top alternatives (<= 20)
};

// Where a step's time went, summed since construction.
struct EngineLoopStats {
  uint64_t steps = 0;
  int64_t tokens_computed = 0;  // batch tokens through the forward
  int64_t tokens_sampled = 0;
  int64_t schedule_ns = 0;      // schedule() + batch construction
  int64_t forward_ns = 0;
  int64_t sample_ns = 0;
  int64_t update_ns = 0;        // update_from_output() + loop bookkeeping
};

class EngineLoop {
 public:
  // Called for every sampled token with the logits it was sampled from (before penalties)
  // and the position the token will take in its sequence. For tests and audits; the span is
  // valid only during the call.
  using LogitsObserver = std::function<void(RequestId id, int32_t position, std::span<const float> logits)>;

  // `model`, `backend` and `clock` must outlive the loop. The KV storage is allocated here:
  // config.kv.num_blocks * block_size positions of every layer, in F16.
  // REQUIRES: the SchedulerConfig's REQUIRES (SN_CHECK).
  EngineLoop(const engine::Model& model, hal::CpuBackend& backend, const SchedulerConfig& config, const Clock& clock);
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Queues a request. Errors: invalid_argument (empty prompt, a token id outside the
  // vocabulary, bad sampling parameters, or what Scheduler::add_request rejects);
  // resource_exhausted when the waiting queue is full (the API answers 429).
  [[nodiscard]] Status add(GenerationRequest request);

  // Drops a waiting or running request and frees its blocks at once. Error: not_found.
  [[nodiscard]] Status cancel(RequestId id);

  // One round of continuous batching; returns the tokens and finishes it produced, in the
  // order of the step's sequences. An empty step (nothing fits) returns no events. On an
  // engine error the step's requests are cancelled (their blocks freed) and the error is
  // returned; the loop stays usable.
  [[nodiscard]] Result<std::vector<RequestEvent>> step();

  [[nodiscard]] bool has_work() const { return scheduler_.has_work(); }
  [[nodiscard]] const Scheduler& scheduler() const { return scheduler_; }
  [[nodiscard]] const EngineLoopStats& stats() const { return stats_; }
  // The token ids that end generation unless a request sets ignore_eos.
  [[nodiscard]] const std::vector<int32_t>& eog_token_ids() const { return eog_; }

  void set_logits_observer(LogitsObserver observer) { observer_ = std::move(observer); }

  // Adds the lower KV cache tiers (host RAM, disks) under the loop's KV storage; `config`'s
  // model_id defaults to the scheduler's. Opening scans the disk tier (progress per file).
  // Errors: those of KvTiers::open. REQUIRES: before the first step(); at most once.
  [[nodiscard]] Status enable_tiers(storage::Env& env, KvTiersConfig config,
                                    const storage::DiskScanProgress& progress = {});
  // nullptr without tiers.
  [[nodiscard]] KvTiers* tiers() const { return tiers_.get(); }
  // Demotes every free cached tier-1 block into the lower tiers now, and waits for their disk
  // writes: at shutdown, so that a restart finds them, and in benchmarks that force demotion.
  // Returns the blocks demoted.
  int32_t spill_cached_blocks();
  // Copies up to `max` cached tier-1 blocks that the lower tiers lack into them, leaving them
  // in tier 1 (write-through, for when the engine idles): host RAM now, disk behind. Returns
  // the blocks copied; 0 without tiers.
  int32_t persist_cached_blocks(int32_t max);

 public:
  // The logprob of `token` under `logits` and the `top_n` most likely tokens (ties: lower id first).
  [[nodiscard]] static TokenLogprobs token_logprobs(std::span<const float> logits, int32_t token, int32_t top_n);

 private:
  struct Live {
    engine::Sampler sampler;
    std::vector<int32_t> history;  // prompt then generated tokens: what the penalties see
    int32_t logprobs = -1;
  };

  // Tier-1 block contents for the tiers: the KV cache's blocks as bytes.
  class CacheBlockIo final : public KvBlockIo {
   public:
    explicit CacheBlockIo(engine::KvCache& cache) : cache_(cache) {}
    [[nodiscard]] size_t block_bytes() const override { return cache_.block_bytes(); }
    [[nodiscard]] int32_t head_dim() const override { return cache_.head_dim(); }
    void read_block(int32_t block, std::span<std::byte> out) const override { cache_.read_block(block, out); }
    void write_block(int32_t block, std::span<const std::byte> in) override { cache_.write_block(block, in); }

   private:
    engine::KvCache& cache_;
  };

  const engine::Model& model_;
  const Clock& clock_;
  Scheduler scheduler_;
  engine::KvCache cache_;
  CacheBlockIo block_io_{cache_};
  std::unique_ptr<KvTiers> tiers_;  // destroyed before cache_ and the scheduler's hook users
  engine::Forward forward_;
  std::vector<int32_t> eog_;
  std::unordered_map<RequestId, Live> live_;
  LogitsObserver observer_;
  EngineLoopStats stats_;
  // Reused every step, so a steady state allocates nothing here.
  engine::Batch batch_;
  std::vector<const int32_t*> tables_;
  std::vector<float> logits_;
  StepResult result_;
  std::vector<std::pair<RequestId, TokenLogprobs>> step_logprobs_;  // this step's, for the events
};

}  // namespace sn::scheduler
