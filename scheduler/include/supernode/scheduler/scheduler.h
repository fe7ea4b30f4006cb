// The scheduler: continuous batching over a paged KV cache, after vLLM v1. Each step,
// schedule() decides which tokens of which requests the engine computes, and
// update_from_output() takes what the engine sampled. There are no prefill or decode modes:
// every request has known tokens (prompt + generated) of which num_computed have KV, and a
// step computes some of the rest. Chunked prefill, prefix-cache hits, decoding and
// resumption after preemption all follow from that one rule. The scheduler is bookkeeping
// only; it never touches device memory. The daemon (later) calls it from one engine thread.
//
//   ManualClock clock;                       // or SteadyClock in production
//   Scheduler s(SchedulerConfig{.model_id = "tinyllama-q4_0@sha256:...",
//                               .kv = {.num_blocks = 1024, .block_size = 16}}, clock);
//   Status st = s.add_request({.id = 1, .tenant = "acme", .prompt = tokens,
//                              .max_tokens = 32, .stop_token_ids = {eos},
//                              .cache_salt = "acme"});
//   if (st.code() == Status::Code::kResourceExhausted) { /* 429: queue full */ }
//   while (s.has_work()) {
//     SchedulerOutput out = s.schedule();
//     StepResult result = engine_run(out);   // one forward over out.sequences
//     for (const RequestEvent& ev : s.update_from_output(out, result)) stream(ev);
//   }
//
// Policy, in the order schedule() applies it (budget = max_num_batched_tokens tokens/step):
//   1. Running requests that are decoding (all prompt tokens computed) get their next tokens,
//      interactive before batch, then by arrival.
//   2. Running requests in the middle of a chunked prefill get their next chunk, same order.
//      When a running request cannot get a block, the lowest-priority running request not
//      yet scheduled this step (batch before interactive, latest arrival first; possibly the
//      request itself) is preempted by recompute: its blocks are freed (its full blocks stay
//      in the prefix cache, so resuming is mostly hits), its generated tokens are kept, and it
//      goes back to the front of its tenant's waiting queue.
//   3. If nothing was preempted, waiting requests are admitted while budget, sequence slots
//      and free blocks last, after their prefix-cache hit. Admission picks, under
//      WeightedFairShare, the class with the least virtual time (tokens scheduled divided by
//      the class weight; interactive 15 : batch 1 by default), then in that class the tenant
//      with the least virtual time (tokens / tenant weight). Interactive thus goes first, and
//      batch still gets about 1/16 of the scheduled tokens while both are backlogged: it is
//      never starved. A tenant or class that becomes active starts no lower than the least
//      virtual time among the active ones (start-time fair queueing): idle time earns no credit.
//      With lower tiers attached (attach_tiers), an admitted request's prefix lookup goes on
//      past the tier-1 hits: blocks in host RAM are promoted into fresh tier-1 blocks at once
//      (counted as computed), and when more of the chain is on disk only, the request is
//      parked instead, the disk reads run on the tiers' I/O thread while other requests
//      compute, and it returns to the front of its queue when they are done (once per
//      admission; whatever is then still missing is recomputed).
//
// Thread safety: none. One thread calls every method; const methods are safe concurrently
// with each other.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <utility>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/scheduler/block_hash.h"
#include "supernode/scheduler/clock.h"
#include "supernode/scheduler/kv_manager.h"
#include "supernode/scheduler/kv_tiers.h"

namespace sn::scheduler {

enum class PriorityClass : uint8_t { kInteractive = 0, kBatch = 1 };

// Weighted fair share across tenants, and across the two priority classes.
struct WeightedFairShare {
  double interactive_weight = 15.0;  // REQUIRES: > 0
  double batch_weight = 1.0;         // REQUIRES: > 0
};
// Strict arrival order, ignoring tenants and classes (a baseline for benchmarks).
struct FirstComeFirstServed {};
using FairnessPolicy = std::variant<WeightedFairShare, FirstComeFirstServed>;

struct SchedulerConfig {
  // The model's identity (name plus content hash): the root of every prefix-cache key.
  std::string model_id;
  KvPoolConfig kv;
  int32_t max_num_batched_tokens = 2048;  // token budget per step; REQUIRES: > 0
  int32_t max_num_seqs = 64;              // running requests at most; REQUIRES: > 0
  int32_t max_waiting = 4096;             // new requests queued at most (preempted ones always re-queue)
  FairnessPolicy fairness = WeightedFairShare{};
};

struct Request {
  RequestId id = 0;  // unique among live requests
  std::string tenant;
  PriorityClass priority = PriorityClass::kInteractive;
  std::vector<int32_t> prompt;  // REQUIRES: not empty
  int32_t max_tokens = 16;      // tokens to generate at most; REQUIRES: > 0
  std::vector<int32_t> stop_token_ids;
  // Set by the server from the tenant, never by the client: requests share cached blocks
  // only when their salts are equal.
  std::string cache_salt;
  std::vector<uint64_t> cache_extra_keys;  // e.g. a LoRA adapter id; enters every block key
};

enum class FinishReason : uint8_t {
  kLength,     // max_tokens generated
  kStopToken,  // generated one of stop_token_ids (it is the last output token)
  kStopFlag,   // the engine's StepResult said stop (e.g. a stop string matched)
};

// Times in the Clock's nanoseconds; -1 until it happens. TTFT = first_token - arrival.
struct RequestMetrics {
  int64_t arrival_ns = -1;
  int64_t first_scheduled_ns = -1;
  int64_t first_token_ns = -1;
  int64_t last_token_ns = -1;
  int64_t finished_ns = -1;
  int32_t num_prompt_tokens = 0;
  int32_t num_output_tokens = 0;
  int32_t num_cached_tokens = 0;  // prompt tokens served by the prefix cache at first admission
  int32_t num_preemptions = 0;
};

// One request's share of a step: compute tokens [start_position, start_position +
// tokens.size()) of its sequence, writing their KV through block_table.
struct ScheduledSequence {
  RequestId id = 0;
  int32_t start_position = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> block_table;  // block i holds positions [i*block_size, (i+1)*block_size)
  bool want_token = false;           // sample one token after the last of `tokens`
};

struct SchedulerOutput {
  uint64_t step = 0;
  std::vector<ScheduledSequence> sequences;
  int32_t num_tokens = 0;               // sum of tokens.size(); <= max_num_batched_tokens
  std::vector<RequestId> preempted;     // preempted during this schedule()
};

struct SequenceResult {
  RequestId id = 0;
  std::optional<int32_t> token;  // the sampled token, where want_token was set
  bool stop = false;             // finish this request now
};

// What the engine reports for one SchedulerOutput, in any order. Entries of requests
// cancelled since schedule() are ignored.
struct StepResult {
  std::vector<SequenceResult> sequences;
};

// A new token, a finish, or both, for the daemon to stream. `metrics` is final when
// `finish` is set.
// The log-probability of a sampled token under the model (log-softmax of the raw logits,
// before penalties and temperature), and the most likely tokens at that position.
struct TokenLogprobs {
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (token, logprob), most likely first
};

struct RequestEvent {
  RequestId id = 0;
  std::optional<int32_t> token;
  std::optional<FinishReason> finish;
  RequestMetrics metrics;
  std::optional<TokenLogprobs> logprobs;  // with token, when the request asked (EngineLoop)
};

struct TenantStats {
  int64_t tokens_scheduled = 0;
  int32_t running = 0;
  int32_t waiting = 0;
};

struct SchedulerStats {
  uint64_t steps = 0;
  int64_t tokens_scheduled = 0;
  int64_t preemptions = 0;
  int64_t rejected_busy = 0;
  int64_t finished = 0;
  int64_t cancelled = 0;
  int64_t fetches = 0;           // requests parked for disk reads
  int64_t tokens_from_tiers = 0;  // prompt tokens promoted from tiers 2-3 instead of computed
  int32_t running = 0;
  int32_t waiting = 0;           // includes those parked for disk reads
  int32_t fetching = 0;
};

class Scheduler {
 public:
  // `clock` must outlive the scheduler. REQUIRES: the config's REQUIRES hold (SN_CHECK).
  Scheduler(const SchedulerConfig& config, const Clock& clock);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Errors: invalid_argument (empty prompt, max_tokens < 1, an id already
  // live, a request too long to ever fit the block pool); resource_exhausted when the waiting
  // queue holds max_waiting new requests (the API answers 429).
  [[nodiscard]] Status add_request(Request request);

  // Drops a waiting or running request and frees its blocks now, also between schedule()
  // and update_from_output() (its results are then ignored; its id may be reused at once).
  // Blocks freed mid-step are not handed out before the next schedule(), so the engine may
  // still write the in-flight step through them. Error: not_found.
  [[nodiscard]] Status cancel(RequestId id);

  // Connects the lower KV cache tiers: blocks the pool evicts are demoted into them, and
  // admissions look them up. `tiers` must outlive the scheduler (or a later attach_tiers(nullptr)).
  // REQUIRES: called before the first schedule().
  void attach_tiers(KvTiers* tiers);
  [[nodiscard]] KvTiers* tiers() const { return tiers_; }
  // Demotes every free cached tier-1 block now (see KvBlockPool::evict_free_cached).
  int32_t evict_free_cached() { return kv_.evict_free_cached(); }
  // See KvBlockPool::take_uncopied_cached.
  [[nodiscard]] std::vector<std::pair<int32_t, BlockHash>> take_uncopied_cached(int32_t max) {
    return kv_.take_uncopied_cached(max);
  }

  // Weight for a tenant's fair share (default 1). REQUIRES: weight > 0.
  void set_tenant_weight(const std::string& tenant, double weight);

  // The next step. May be empty (nothing fits). REQUIRES: the previous output went back
  // through update_from_output().
  [[nodiscard]] SchedulerOutput schedule();

  // Applies the engine's results for `output` (the last schedule()): advances computed
  // tokens, appends sampled tokens, caches newly full blocks, finishes requests (freeing
  // their blocks). Returns the events in the order of output.sequences.
  std::vector<RequestEvent> update_from_output(const SchedulerOutput& output, const StepResult& result);

  [[nodiscard]] bool has_work() const { return !requests_.empty(); }
  [[nodiscard]] SchedulerStats stats() const;
  [[nodiscard]] TenantStats tenant_stats(const std::string& tenant) const;
  [[nodiscard]] const KvManager& kv() const { return kv_; }
  [[nodiscard]] const SchedulerConfig& config() const { return config_; }
  // Generated tokens so far of a live request (nullopt when unknown or finished).
  [[nodiscard]] std::optional<std::vector<int32_t>> output_tokens(RequestId id) const;
  [[nodiscard]] std::optional<RequestMetrics> metrics(RequestId id) const;

  // Verifies every invariant (block accounting, queue membership, budgets); for tests.
  [[nodiscard]] Status check_invariants() const;

 private:
  // kFetching: taken out of its waiting queue while the tiers read its prefix from disk; it
  // still counts as waiting (queue bounds, tenant counts).
  enum class State : uint8_t { kWaiting, kRunning, kFetching };
  struct Req {
    Request r;
    uint64_t arrival_seq = 0;
    State state = State::kWaiting;
    int64_t num_computed = 0;
    std::vector<int32_t> output;
    BlockHash root;
    std::vector<BlockHash> block_hashes;  // keys of the full blocks of known tokens
    uint64_t scheduled_step = 0;          // last step this request was scheduled in (0: never)
    bool counts_as_new = false;           // waiting and never admitted: counts against max_waiting
    bool fetched = false;                 // parked for disk reads since it last held KV
    uint64_t fetch_ticket = 0;
    RequestMetrics metrics;

    [[nodiscard]] int64_t num_known() const { return static_cast<int64_t>(r.prompt.size() + output.size()); }
    [[nodiscard]] int32_t token_at(int64_t pos) const {
      return pos < static_cast<int64_t>(r.prompt.size()) ? r.prompt[static_cast<size_t>(pos)]
                                                         : output[static_cast<size_t>(pos - static_cast<int64_t>(r.prompt.size()))];
    }
  };
  struct Tenant {
    double weight = 1.0;
    double vtime = 0.0;
    int32_t running = 0;
    int32_t waiting = 0;
    int64_t tokens_scheduled = 0;
  };
  // Waiting requests of one class: FIFO per tenant.
  using ClassQueue = std::map<std::string, std::deque<RequestId>>;

  void extend_block_hashes(Req& q);
  void emit(SchedulerOutput& out, Req& q, int64_t n, const KvBlocks& blocks);
  void charge(const Req& q, int64_t n);
  void preempt(Req& q, SchedulerOutput& out);
  void enqueue_waiting(Req& q, bool front);
  void remove_waiting(Req& q);
  void link_waiting(Req& q, bool front);
  void unlink_waiting(Req& q);
  void park_for_fetch(Req& q, std::span<const BlockHash> keys);
  void unpark_fetched();
  void insert_running(Req& q);
  void remove_running(const Req& q);
  void activate(Req& q);
  void deactivate(const Req& q);
  [[nodiscard]] Req* pick_waiting();
  [[nodiscard]] bool schedule_running(Req& q, int64_t n, SchedulerOutput& out);
  [[nodiscard]] bool higher_priority(const Req& a, const Req& b) const;
  RequestEvent finish(Req& q, FinishReason reason);
  [[nodiscard]] double class_weight(PriorityClass c) const;

  SchedulerConfig config_;
  const Clock& clock_;
  bool fair_;
  KvManager kv_;
  KvTiers* tiers_ = nullptr;
  std::unordered_map<uint64_t, RequestId> fetching_;  // fetch ticket -> parked request
  uint64_t next_ticket_ = 1;
  std::unordered_map<RequestId, Req> requests_;
  std::vector<RequestId> running_;  // priority order: interactive first, then arrival
  ClassQueue waiting_[2];
  int32_t num_waiting_ = 0;
  int32_t num_waiting_new_ = 0;  // waiting that never ran: bounded by max_waiting
  std::map<std::string, Tenant> tenants_;
  double class_vtime_[2] = {0.0, 0.0};
  int32_t class_active_[2] = {0, 0};
  uint64_t next_arrival_ = 1;
  uint64_t step_ = 0;
  bool in_flight_ = false;
  SchedulerStats stats_;
};

}  // namespace sn::scheduler
