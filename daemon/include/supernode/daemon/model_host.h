// ModelHost: one served model: its weights, a CPU backend and thread pool, the engine loop
// (scheduler + forward) and the engine thread that drives it. The HTTP side submits
// requests and cancels them from any thread; the engine thread turns sampled tokens into
// text (UTF-8 safe, stop strings held back until they can no longer match) and reports it
// through each request's sink. Requests of all clients share one continuous batch.
//
//   Result<std::unique_ptr<ModelHost>> host = ModelHost::load({.id = "tinyllama", .path = p});
//   Result<uint64_t> id = (*host)->submit({.prompt = tokens, .max_tokens = 64, ...},
//                                         [](const HostEvent& ev) { /* engine thread */ });
//   (*host)->cancel(*id);   // a client went away: its blocks are freed at the next step
//
// Thread safety: submit, cancel and the getters may be called from any thread. Sinks run on
// the engine thread and must not block (post the event to the caller's executor).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "supernode/base/mutex.h"
#include "supernode/base/status.h"
#include "supernode/engine/chat_template.h"
#include "supernode/engine/model.h"
#include "supernode/daemon/moderation.h"
#include "supernode/engine/sampling.h"
#include "supernode/hal/cpu_backend.h"
#include "supernode/hal/thread_pool.h"
#include "supernode/scheduler/engine_loop.h"

namespace sn::daemon {

struct ModelHostOptions {
  std::string id;    // the model id clients name
  std::string path;  // GGUF file
  int threads = 0;   // compute threads; 0: one per physical core
  int32_t kv_blocks = 0;  // tier-1 KV blocks of 16 tokens; 0: enough for max_seqs x context
  int32_t context = 4096; // longest prompt + completion accepted
  int32_t max_seqs = 16;
  int32_t max_waiting = 256;
  // Requests one tenant may have accepted beyond max_seqs (queued or waiting), so that no
  // tenant fills the whole queue; further ones get resource_exhausted (429).
  int32_t max_waiting_per_tenant = 64;
  int32_t batch_tokens = 512;  // tokens per step
  scheduler::KvTiersConfig tiers;  // host_bytes 0 and no dirs: tier 1 only
  // The model's content identity, which roots every KV block hash on every tier (so the
  // disk tier never serves one model's blocks to another file under the same id):
  // "sha256:<hex>" of the file when known (the catalog has it); empty: load() computes a
  // fingerprint (model_fingerprint()).
  std::string identity;
};

// A content fingerprint of a model file, cheap on a many-GB file: SHA-256 over its size,
// its first 16 MiB (GGUF header, metadata and tensor table) and 4 KiB at 1024 evenly spaced
// offsets. Any two files that differ in metadata, tensor layout or size, and in practice in
// their weights, differ here; it is an identity, not an integrity check. "fp:<hex>".
// Errors: io_error.
[[nodiscard]] Result<std::string> model_fingerprint(const std::string& path);

// What a request asks of the model, already tokenized.
struct HostRequest {
  std::vector<int32_t> prompt;
  int32_t max_tokens = 16;
  engine::SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings (not part of the output)
  bool ignore_eos = false;
  std::string tenant;
  std::string cache_salt;         // from the tenant, never from the client
  int32_t logprobs = -1;          // >= 0: each token's logprob and this many alternatives (<= 20)
  std::vector<std::string> filter_terms;  // output moderation terms, lowercase (moderation.h)
};

// A generated token's logprob (OpenAI's logprobs), its text as the vocab spells it (bytes
// of a partial UTF-8 character when the token is a byte), and the top alternatives.
struct HostLogprob {
  std::string token;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;
};

// kCancelled: the last event of a request cancelled by the caller (its n_tokens is what
// was generated, for metering); it carries no text.
enum class HostFinish : uint8_t { kNone, kStop, kLength, kContentFilter, kError, kCancelled };

// One report to a request's sink: new text, and/or the end.
struct HostEvent {
  std::string text;                   // new output text (may be empty)
  std::vector<HostLogprob> logprobs;  // of the tokens behind this event, when asked
  int32_t n_tokens = 0;               // tokens generated so far
  HostFinish finish = HostFinish::kNone;
  Status error;                       // when finish == kError
  scheduler::RequestMetrics metrics;  // final when finish != kNone
};

using HostSink = std::function<void(const HostEvent&)>;

class ModelHost {
 public:
  // Loads the model, repacks its weights and starts the engine thread. Errors: those of
  // loading the GGUF, or invalid_argument for the options.
  [[nodiscard]] static Result<std::unique_ptr<ModelHost>> load(const ModelHostOptions& options);
  // Stops the engine thread; requests still live get finish kError ("shutting down").
  ~ModelHost();
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  [[nodiscard]] const std::string& id() const { return options_.id; }
  [[nodiscard]] const engine::Model& model() const { return *model_; }
  [[nodiscard]] int32_t context() const { return options_.context; }
  [[nodiscard]] int64_t created_s() const { return created_s_; }
  // The model's chat template (from tokenizer.chat_template), or nullptr with the reason in
  // chat_template_status() (a model without one serves completions only).
  [[nodiscard]] const engine::ChatTemplate* chat_template() const { return chat_ ? &*chat_ : nullptr; }
  [[nodiscard]] const Status& chat_template_status() const { return chat_status_; }
  [[nodiscard]] const std::optional<std::string>& bos_text() const { return bos_text_; }
  [[nodiscard]] const std::optional<std::string>& eos_text() const { return eos_text_; }

  // Queues a request; its events go to `sink` on the engine thread, the last one with
  // finish != kNone (every accepted request gets exactly one last event, also when
  // cancelled or failed, and n_tokens there counts every token generated). The sink is
  // destroyed after its last event. Errors (sink not called): invalid_argument (empty or
  // too long prompt, bad sampling parameters), resource_exhausted (the waiting queue is
  // full, or the tenant holds its share of it: 429).
  [[nodiscard]] Result<uint64_t> submit(HostRequest request, HostSink sink);
  // Drops a request at the next step; its last event is kCancelled. Unknown or finished
  // ids are ignored.
  void cancel(uint64_t id);

  // Waits until no request is queued or running, or until `timeout` passes; true when idle.
  // Used to drain before unloading or exiting (new requests should be turned away first).
  [[nodiscard]] bool wait_idle(std::chrono::milliseconds timeout);
  // Stops the engine thread: requests still live end with kError ("shutting down"), later
  // submits are refused. Idempotent; the destructor calls it.
  void stop();
  // Requests accepted and not yet finished (queued, waiting or running).
  [[nodiscard]] int32_t in_flight() const;
  // Grows with every pass of the engine thread's loop (for the watchdog: a busy model
  // whose count stands still is wedged).
  [[nodiscard]] uint64_t progress() const { return progress_.load(std::memory_order_relaxed); }

  // Counters for /metrics and status.
  struct Stats {
    int32_t running = 0;
    int32_t waiting = 0;
    int64_t steps = 0;
    int64_t tokens_generated = 0;
    int64_t tokens_computed = 0;
    int64_t preemptions = 0;
    scheduler::KvPoolStats kv;      // tier 1
    scheduler::KvTierStats tiers;   // tiers 2-3 (zeros without them)
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Live {
    std::string tenant;
    HostSink sink;
    engine::IncrementalDetokenizer detok;
    engine::StopMatcher stops;
    ContentFilter filter;
    int32_t n_tokens = 0;
  };
  struct Submission {
    uint64_t id;
    HostRequest request;
    HostSink sink;
  };

  explicit ModelHost(const ModelHostOptions& options);
  void engine_main();
  void deliver(const scheduler::RequestEvent& ev);
  void request_ended(const std::string& tenant);
  void publish_stats();  // engine thread: stats_ and queued_ from the loop  // one accepted request is over (finished, failed or cancelled)
  void finish(uint64_t id, Live& live, HostFinish how, const scheduler::RequestMetrics& metrics, Status error = {});

  ModelHostOptions options_;
  int64_t created_s_ = 0;
  std::unique_ptr<engine::Model> model_;
  std::optional<engine::ChatTemplate> chat_;
  Status chat_status_;
  std::optional<std::string> bos_text_, eos_text_;
  std::unique_ptr<hal::ThreadPool> pool_;
  std::unique_ptr<hal::CpuBackend> backend_;
  std::unique_ptr<scheduler::SteadyClock> clock_;
  std::unique_ptr<scheduler::EngineLoop> loop_;  // engine thread only

  mutable Mutex mu_;
  CondVar cv_;                         // work arrived (inbox, cancels, stop)
  std::deque<Submission> inbox_ SN_GUARDED_BY(mu_);
  std::vector<uint64_t> cancels_ SN_GUARDED_BY(mu_);
  int32_t queued_ SN_GUARDED_BY(mu_) = 0;     // inbox + waiting, for early 429
  uint64_t next_id_ SN_GUARDED_BY(mu_) = 1;
  bool stop_ SN_GUARDED_BY(mu_) = false;
  int32_t in_flight_ SN_GUARDED_BY(mu_) = 0;  // submitted, not finished
  std::unordered_map<std::string, int32_t> tenant_in_flight_ SN_GUARDED_BY(mu_);  // by tenant
  std::atomic<uint64_t> progress_{0};
  CondVar idle_cv_;                    // signalled when in_flight_ drops to 0
  Stats stats_ SN_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Live> live_;  // engine thread only
  std::thread engine_;
};

}  // namespace sn::daemon
