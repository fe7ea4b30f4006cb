// The OpenAI-compatible API of supernoded: GET /v1/models, POST /v1/completions and
// /v1/chat/completions (whole or streamed as server-sent events), each behind a tenant's API
// key (checked by the router on the headers, before the body is read). A completion request
// is admitted by the rate limiter before any expensive work, prepared (chat template,
// tokens, input moderation) on the prep pool off the I/O threads, and handed to its
// ModelHost; the engine's events come back to the connection's strand. Its CallMeter writes
// the usage row and settles the quota when the last holder lets go, so every generated
// token is metered however the request ends.
// Thread safety: add_routes before serving; the handlers run on connections' strands.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "supernode/base/mutex.h"
#include "supernode/daemon/metrics.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/moderation.h"
#include "supernode/daemon/rate_limiter.h"
#include "supernode/storage/state_store.h"

#include "openai_request.h"
#include "router.h"

namespace sn::daemon {

struct Prep;  // a request's preparation on the prep pool (openai_api.cpp)

struct OpenAiApiOptions {
  int prep_threads = 2;   // render + tokenize threads
  int idle_timeout_s = 60;
};

class OpenAiApi {
 public:
  OpenAiApi(OpenAiApiOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation,
            Metrics& metrics);
  ~OpenAiApi();
  OpenAiApi(const OpenAiApi&) = delete;
  OpenAiApi& operator=(const OpenAiApi&) = delete;

  void add_routes(Router& router);

  // The key of a request's headers and its tenant (Guard::kTenantKey); false with `err`
  // (401, or 500 when the state store fails: its message stays in the log).
  [[nodiscard]] bool authorize(const http::request_header<>& head, std::optional<storage::Principal>& who,
                               ApiError& err) const;

  // From now on completion requests get 503 (Retry-After: 5).
  void begin_drain() { draining_.store(true); }
  [[nodiscard]] bool draining() const { return draining_.load(); }
  // Waits until no completion response is being computed or written (or `timeout`).
  [[nodiscard]] bool wait_idle(std::chrono::milliseconds timeout);
  [[nodiscard]] bool idle();
  // Joins the prep pool (at stop).
  void join();

  // Requests per second, tokens and latencies for the admin UI's live view.
  [[nodiscard]] Metrics& metrics() { return metrics_; }

  class CallCount;

 private:
  net::awaitable<bool> models_route(Exchange& ex);
  net::awaitable<bool> completions(Exchange& ex, bool chat);
  net::awaitable<void> prepare(const std::shared_ptr<Prep>& prep);
  void record_done(const std::string& model, const std::string& tenant, int status, size_t prompt_tokens,
                   int64_t completion_tokens, const scheduler::RequestMetrics& m);

  OpenAiApiOptions options_;
  storage::StateStore& state_;
  ModelRegistry& models_;
  const Moderation& moderation_;
  Metrics& metrics_;
  RateLimiter limiter_;
  std::atomic<bool> draining_{false};
  Mutex calls_mu_;
  CondVar calls_cv_;
  int64_t calls_ SN_GUARDED_BY(calls_mu_) = 0;  // completion calls being answered
  net::thread_pool prep_pool_;
};

// An OpenAI-format error answer.
[[nodiscard]] Reply openai_error(const ApiError& e);

}  // namespace sn::daemon
