// The OpenAI-compatible API (openai_api.h): the completion flow of one call, from the
// quota to the last SSE chunk, over a Responder of the transport.
#include "openai_api.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/daemon/log.h"

#include "openai_response.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <utility>

namespace sn::daemon {
namespace {

std::string random_id(const char* prefix) {
  static Mutex mu;
  static std::mt19937_64 rng SN_GUARDED_BY(mu){std::random_device{}()};
  MutexLock lock(mu);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(rng()));
  return buf;
}

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t wall_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// OpenAI's rate-limit headers (reset as a duration such as "1.5s").
std::vector<std::pair<std::string, std::string>> ratelimit_headers(const Admission& a) {
  std::vector<std::pair<std::string, std::string>> h;
  auto secs = [](double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3gs", std::max(0.0, s));
    return std::string(b);
  };
  if (a.headers.limit_requests > 0) {
    h.emplace_back("x-ratelimit-limit-requests", std::to_string(a.headers.limit_requests));
    h.emplace_back("x-ratelimit-remaining-requests", std::to_string(a.headers.remaining_requests));
    h.emplace_back("x-ratelimit-reset-requests", secs(a.headers.reset_requests_s));
  }
  if (a.headers.limit_tokens > 0) {
    h.emplace_back("x-ratelimit-limit-tokens", std::to_string(a.headers.limit_tokens));
    h.emplace_back("x-ratelimit-remaining-tokens", std::to_string(a.headers.remaining_tokens));
    h.emplace_back("x-ratelimit-reset-tokens", secs(a.headers.reset_tokens_s));
  }
  return h;
}

// Events of one request, handed from the engine thread to the connection's strand.
struct Pending {
  explicit Pending(net::any_io_executor ex) : timer(ex) {}
  Mutex mu;
  std::deque<std::pair<int, HostEvent>> events SN_GUARDED_BY(mu);  // (choice index, event)
  net::steady_timer timer;       // strand only
  bool notified = false;         // strand only
  bool hung_up = false;          // strand only: the client closed its connection
};

// The metering of one call: usage row and quota settlement, written when the last holder
// (the coroutine, or an engine-side sink after its request's last event) lets go. Sinks
// record each choice's token count; only the engine thread writes a choice's count, and the
// shared_ptr's release orders those writes before the destructor.
class CallMeter {
 public:
  CallMeter(storage::StateStore& state, RateLimiter& limiter, uint64_t ticket, std::string key_id, int n)
      : state_(state), limiter_(limiter), ticket_(ticket), key_id_(std::move(key_id)), tokens_(static_cast<size_t>(n)) {}
  CallMeter(const CallMeter&) = delete;
  CallMeter& operator=(const CallMeter&) = delete;
  ~CallMeter() {
    const int64_t completion = completion_tokens();
    const int64_t prompt = started_ ? prompt_tokens_ : 0;
    if (started_) state_.record_usage(key_id_, wall_minute(), prompt, completion);
    limiter_.settle(ticket_, prompt + completion, mono_s());
  }
  // The engine accepted the call's first request: its prompt counts from now on.
  void started(int64_t prompt_tokens) {
    started_ = true;
    prompt_tokens_ = prompt_tokens;
  }
  void saw(int choice, int32_t n_tokens) {
    std::atomic<int32_t>& t = tokens_[static_cast<size_t>(choice)];
    if (n_tokens > t.load(std::memory_order_relaxed)) t.store(n_tokens, std::memory_order_relaxed);
  }
  [[nodiscard]] int64_t completion_tokens() const {
    int64_t sum = 0;
    for (const std::atomic<int32_t>& t : tokens_) sum += t.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  storage::StateStore& state_;
  RateLimiter& limiter_;
  uint64_t ticket_;
  std::string key_id_;
  bool started_ = false;  // set before any sink exists
  int64_t prompt_tokens_ = 0;
  std::vector<std::atomic<int32_t>> tokens_;
};

// A model is allowed when both the key's and its tenant's lists allow it (empty: all).
bool allowed(const storage::Principal& p, const std::string& model) {
  auto in = [&](const std::vector<std::string>& list) {
    return list.empty() || std::find(list.begin(), list.end(), model) != list.end();
  };
  return in(p.key.limits.models) && in(p.tenant.limits.models);
}


}  // namespace

// A request's preparation on the prep pool: its result, and the timer the coroutine sleeps
// on until it is there. Shared, so the pool's work outlives a connection torn down early.
struct Prep {
  explicit Prep(net::any_io_executor ex) : timer(ex) {}
  OpenAiRequest request;
  std::shared_ptr<ModelHost> host;
  std::shared_ptr<const ModerationTerms> terms;
  std::vector<int32_t> tokens;  // results
  ApiError err;
  bool ok = false;
  bool moderated = false;       // refused by input moderation
  net::steady_timer timer;      // strand only
  bool done = false;            // strand only
};


Reply openai_error(const ApiError& e) { return Reply{e.status, error_body(e), "application/json", {}, false}; }

// Counted until the response is written: a drain waits for it, not only for the engine.
class OpenAiApi::CallCount {
 public:
  explicit CallCount(OpenAiApi& api) : api_(api) {
    MutexLock lock(api_.calls_mu_);
    ++api_.calls_;
  }
  ~CallCount() {
    MutexLock lock(api_.calls_mu_);
    if (--api_.calls_ == 0) api_.calls_cv_.notify_all();
  }
  CallCount(const CallCount&) = delete;
  CallCount& operator=(const CallCount&) = delete;

 private:
  OpenAiApi& api_;
};

OpenAiApi::OpenAiApi(OpenAiApiOptions options, storage::StateStore& state, ModelRegistry& models,
                     const Moderation& moderation, Metrics& metrics)
    : options_(options),
      state_(state),
      models_(models),
      moderation_(moderation),
      metrics_(metrics),
      prep_pool_(static_cast<size_t>(std::max(1, options.prep_threads))) {}

OpenAiApi::~OpenAiApi() { join(); }

void OpenAiApi::join() { prep_pool_.join(); }

bool OpenAiApi::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(calls_mu_);
  while (calls_ != 0) {
    if (!calls_cv_.wait_until(calls_mu_, deadline)) return calls_ == 0;
  }
  return true;
}

bool OpenAiApi::idle() {
  MutexLock lock(calls_mu_);
  return calls_ == 0;
}

void OpenAiApi::add_routes(Router& router) {
  router.add({http::verb::get, "/v1/models", Guard::kTenantKey, ErrorStyle::kOpenAi, 0,
              [this](Exchange& ex) { return models_route(ex); }, ""});
  router.add({http::verb::post, "/v1/completions", Guard::kTenantKey, ErrorStyle::kOpenAi, 0,
              [this](Exchange& ex) { return completions(ex, false); }, ""});
  router.add({http::verb::post, "/v1/chat/completions", Guard::kTenantKey, ErrorStyle::kOpenAi, 0,
              [this](Exchange& ex) { return completions(ex, true); }, ""});
}

bool OpenAiApi::authorize(const http::request_header<>& head, std::optional<storage::Principal>& who,
                          ApiError& err) const {
  err = {http::status::unauthorized, "", "invalid_request_error", "", "invalid_api_key"};
  auto it = head.find(http::field::authorization);
  if (it == head.end()) {
    err.message = "missing API key: send 'Authorization: Bearer <key>'";
    return false;
  }
  const std::string_view v(it->value().data(), it->value().size());
  if (v.substr(0, 7) != "Bearer ") {
    err.message = "the Authorization header must be 'Bearer <key>'";
    return false;
  }
  Result<std::optional<storage::Principal>> r = state_.authorize(v.substr(7));
  if (!r.ok()) {
    log(LogLevel::kError, "checking an API key failed: " + r.status().to_string());
    err = {http::status::internal_server_error, "internal error: the key could not be checked", "server_error", "", ""};
    return false;
  }
  if (!*r) {
    err.message = "invalid API key";  // never echo the key
    return false;
  }
  who = std::move(**r);
  return true;
}


net::awaitable<bool> OpenAiApi::models_route(Exchange& ex) {
  const storage::Principal& p = *ex.tenant;
  json data = json::array();
  for (const std::shared_ptr<ModelHost>& h : models_.list()) {
    if (!allowed(p, h->id())) continue;
    data.push_back({{"id", h->id()}, {"object", "model"}, {"created", h->created_s()}, {"owned_by", "supernode"}});
  }
  const Reply reply{http::status::ok, dump_json(json{{"object", "list"}, {"data", data}}), "application/json", {}, false};
  const bool ok = co_await ex.out.send(reply);
  co_return ok;
}

// Renders and tokenizes on the prep pool and runs input moderation; resumes on the
// connection's strand when done.
net::awaitable<void> OpenAiApi::prepare(const std::shared_ptr<Prep>& prep) {
  net::post(prep_pool_, [prep] {
    try {
      const ModelHost& h = *prep->host;
      PromptModel pm{.tokenizer = &h.model().tokenizer(),
                     .chat_template = h.chat_template(),
                     .model_id = h.id(),
                     .bos_text = h.bos_text(),
                     .eos_text = h.eos_text()};
      prep->ok = prepare_prompt(prep->request, pm, prep->tokens, prep->err);
      if (prep->ok && !prep->terms->input.empty() &&
          prep->terms->input_hit(h.model().tokenizer().decode(prep->tokens, /*special=*/true))) {
        prep->ok = false;
        prep->moderated = true;
        prep->err = {http::status::bad_request, "the prompt was refused by content moderation", "invalid_request_error",
                     prep->request.chat ? "messages" : "prompt", "content_filter"};
      }
    } catch (const std::exception& e) {
      prep->ok = false;
      prep->err = {http::status::internal_server_error, "internal error", "server_error", "", ""};
      log(LogLevel::kError, std::string("preparing a request failed: ") + e.what());
    }
    net::post(prep->timer.get_executor(), [prep] {
      prep->done = true;
      prep->timer.cancel();
    });
  });
  while (!prep->done) {
    prep->timer.expires_at(net::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await prep->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}


void OpenAiApi::record_done(const std::string& model, const std::string& tenant, int status, size_t prompt_tokens,
                 int64_t completion_tokens, const scheduler::RequestMetrics& m) {
  const double ttft = m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1e9 : -1;
  const double tpot = m.num_output_tokens > 1 ? (m.last_token_ns - m.first_token_ns) / 1e9 / (m.num_output_tokens - 1) : -1;
  const double e2e = m.last_token_ns >= 0 ? (m.last_token_ns - m.arrival_ns) / 1e9 : -1;
  metrics_.request_done(model, tenant, status, static_cast<int64_t>(prompt_tokens), completion_tokens, ttft, tpot, e2e);
}


net::awaitable<bool> OpenAiApi::completions(Exchange& ex, bool chat) {
  const CallCount counted(*this);
  const storage::Principal& who = *ex.tenant;
  const storage::ApiKeyRecord& key = who.key;
  const std::string route_name = chat ? "/v1/chat/completions" : "/v1/completions";
  if (draining_.load()) {
    // SIGTERM: requests in flight finish; new ones go to another replica or retry.
    metrics_.request_refused(route_name, 503);
    Reply reply = openai_error({http::status::service_unavailable, "the server is shutting down; retry shortly",
                               "server_error", "", "shutting_down"});
    reply.headers.emplace_back("Retry-After", "5");
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }
  // 1. The body (cheap, bounded), the model and whether this key may use it.
  auto prep = std::make_shared<Prep>(ex.out.executor());
  ApiError err;
  bool ok_so_far = parse_openai_request(ex.request.body(), chat, prep->request, err);
  if (ok_so_far) {
    prep->host = models_.find(prep->request.model);
    if (prep->host == nullptr || !allowed(who, prep->request.model)) {
      err = {http::status::not_found, "the model '" + prep->request.model + "' does not exist", "invalid_request_error",
             "model", "model_not_found"};
      ok_so_far = false;
    } else if (prep->request.max_tokens > prep->host->context()) {
      err = {http::status::bad_request,
             "'max_tokens' must be at most " + std::to_string(prep->host->context()) + " (the model's context)",
             "invalid_request_error", "max_tokens", ""};
      ok_so_far = false;
    }
  }
  if (!ok_so_far) {
    metrics_.request_refused(route_name, static_cast<int>(err.status));
    const Reply reply = openai_error(err);
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }
  const OpenAiRequest& r = prep->request;
  const int n = r.n;
  const int64_t max_tokens = r.max_tokens;
  // 2. The quota, before any expensive work: a request, n in-flight slots, n x max_tokens
  // reserved (the prompt is charged when settled).
  const Admission adm = limiter_.admit({{"key:" + key.key_id, key.limits}, {"tenant:" + key.tenant, who.tenant.limits}},
                                       n * max_tokens, n, mono_s());
  const std::vector<std::pair<std::string, std::string>> rate_headers = ratelimit_headers(adm);
  if (!adm.ok) {
    metrics_.request_refused(route_name, 429);
    Reply reply = openai_error({http::status::too_many_requests, "rate limit reached: " + adm.refused_by,
                               "rate_limit_error", "", "rate_limit_exceeded"});
    reply.headers = rate_headers;
    reply.headers.emplace_back("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(adm.retry_after_s))));
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }
  auto meter = std::make_shared<CallMeter>(state_, limiter_, adm.ticket, key.key_id, n);
  // 3. Template, tokens and input moderation, off the I/O threads.
  prep->terms = moderation_.snapshot();
  co_await prepare(prep);
  if (!prep->ok) {
    if (prep->moderated) {
      log(LogLevel::kInfo, "prompt refused by content moderation",
          {.request_id = std::nullopt, .tenant = key.tenant, .model = r.model, .key_id = key.key_id, .extra = {}});
    }
    metrics_.request_refused(route_name, static_cast<int>(prep->err.status));
    Reply reply = openai_error(prep->err);
    reply.headers = rate_headers;
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }
  const std::shared_ptr<ModelHost> host = prep->host;
  const size_t prompt_tokens = prep->tokens.size();
  HostRequest base;
  base.prompt = std::move(prep->tokens);
  base.max_tokens = static_cast<int32_t>(max_tokens);
  base.sampling = r.sampling;
  base.stop = r.stop;
  base.ignore_eos = r.ignore_eos;
  base.tenant = key.tenant;
  base.cache_salt = who.tenant.cache_salt;
  base.logprobs = r.logprobs;
  base.filter_terms = prep->terms->output;
  std::string prompt_log;
  if (log_prompts_enabled()) prompt_log = r.chat ? dump_json(r.messages) : r.prompt_text.value_or("(token ids)");

  // 4. One engine request per choice; they share the prompt's KV blocks through the prefix cache.
  auto pending = std::make_shared<Pending>(ex.out.executor());
  std::vector<uint64_t> ids;
  Status submit_error;
  for (int i = 0; i < n && submit_error.is_ok(); ++i) {
    HostRequest one = base;
    if (r.seeded) one.sampling.seed += static_cast<uint64_t>(i);
    HostSink sink = [pending, meter, i](const HostEvent& ev) {
      meter->saw(i, ev.n_tokens);
      {
        MutexLock lock(pending->mu);
        pending->events.emplace_back(i, ev);
      }
      net::post(pending->timer.get_executor(), [pending] {
        pending->notified = true;
        pending->timer.cancel();
      });
    };
    Result<uint64_t> id = host->submit(std::move(one), std::move(sink));
    if (id.ok()) {
      // The prompt counts once the engine has it. (The meter's destructor runs after this:
      // this coroutine still holds it.)
      if (ids.empty()) meter->started(static_cast<int64_t>(prompt_tokens));
      ids.push_back(*id);
    } else {
      submit_error = id.status();
    }
  }
  if (!submit_error.is_ok()) {
    for (uint64_t id : ids) host->cancel(id);
    Reply reply = openai_error(from_status(submit_error));
    reply.headers = rate_headers;
    if (submit_error.code() == Status::Code::kResourceExhausted) reply.headers.emplace_back("Retry-After", "1");
    metrics_.request_refused(route_name, static_cast<int>(reply.status));
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }
  auto cancel_all = [&] {
    for (uint64_t id : ids) host->cancel(id);
  };
  ex.out.watch_hangup([pending] {
    pending->hung_up = true;
    pending->notified = true;
    pending->timer.cancel();
  });
  auto stop_watching = [&] { ex.out.stop_watching(); };

  const std::string cid = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = now_s();
  const std::string model_id = host->id();
  // The next events, or none when the client hung up.
  auto next_events = [&]() -> net::awaitable<std::deque<std::pair<int, HostEvent>>> {
    for (;;) {
      {
        MutexLock lock(pending->mu);
        if (!pending->events.empty()) {
          std::deque<std::pair<int, HostEvent>> out;
          out.swap(pending->events);
          co_return out;
        }
      }
      if (pending->hung_up) co_return std::deque<std::pair<int, HostEvent>>();
      if (!pending->notified) {
        pending->timer.expires_at(net::steady_timer::time_point::max());
        boost::system::error_code ec;
        co_await pending->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      pending->notified = false;
    }
  };
  struct Choice {
    std::string text;
    std::vector<HostLogprob> logprobs;
    int64_t text_offset = 0;  // completions' logprobs.text_offset so far
    HostEvent last;
    bool done = false;
  };
  std::vector<Choice> choices(static_cast<size_t>(n));
  int finished = 0;
  Status failure;
  // Metrics and the log line of the call; its usage object for the client. The usage row
  // itself is the meter's (equal: both count each choice's last n_tokens).
  auto finish_call = [&](int status) -> json {
    int64_t completion = 0;
    for (const Choice& c : choices) completion += c.last.n_tokens;
    const scheduler::RequestMetrics& m = choices[0].last.metrics;
    record_done(model_id, key.tenant, status, prompt_tokens, completion, m);
    if (log_enabled(LogLevel::kInfo)) {
      LogFields f{.request_id = cid, .tenant = key.tenant, .model = model_id, .key_id = key.key_id, .extra = {}};
      f.extra = {{"prompt_tokens", std::to_string(prompt_tokens)},
                 {"cached_tokens", std::to_string(m.num_cached_tokens)},
                 {"completion_tokens", std::to_string(completion)},
                 {"choices", std::to_string(n)},
                 {"ttft_ms", std::to_string(m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1000000 : -1)},
                 {"stream", r.stream ? "true" : "false"}};
      if (status != 200) f.extra.emplace_back("status", std::to_string(status));
      if (!r.user.empty()) f.extra.emplace_back("user", r.user);
      if (!prompt_log.empty()) f.extra.emplace_back("prompt", prompt_log);
      log(LogLevel::kInfo, chat ? "chat completion" : "completion", f);
    }
    return usage_json(static_cast<int64_t>(prompt_tokens), completion, m.num_cached_tokens);
  };
  // A client that went away: its blocks are freed now; what it generated is metered when
  // the engine reports the cancellation.
  auto hung_up = [&] {
    cancel_all();
    (void)finish_call(499);  // nginx's "client closed request"
  };

  if (!r.stream) {
    while (finished < n && failure.is_ok()) {
      std::deque<std::pair<int, HostEvent>> batch = co_await next_events();
      if (pending->hung_up) {
        hung_up();
        co_return false;
      }
      for (auto& [i, ev] : batch) {
        Choice& c = choices[static_cast<size_t>(i)];
        c.text += ev.text;
        for (HostLogprob& lp : ev.logprobs) c.logprobs.push_back(std::move(lp));
        if (ev.finish == HostFinish::kError) failure = ev.error;
        if (ev.finish != HostFinish::kNone && !c.done) {
          c.done = true;
          ++finished;
        }
        c.last.n_tokens = ev.n_tokens;
        if (ev.finish != HostFinish::kNone) c.last = std::move(ev);
      }
    }
    stop_watching();
    if (!failure.is_ok()) {
      cancel_all();
      (void)finish_call(500);
      const Reply reply = openai_error(from_status(failure));
      const bool ok = co_await ex.out.send(reply);
      co_return ok;
    }
    json out_choices = json::array();
    for (int i = 0; i < n; ++i) {
      Choice& c = choices[static_cast<size_t>(i)];
      const bool lp = r.logprobs >= 0;
      json logprobs = !lp ? json(nullptr) : chat ? chat_logprobs(c.logprobs) : completion_logprobs(c.logprobs, c.text_offset);
      out_choices.push_back(chat ? json{{"index", i},
                                        {"message", {{"role", "assistant"}, {"content", c.text}}},
                                        {"logprobs", logprobs},
                                        {"finish_reason", finish_name(c.last.finish)}}
                                 : json{{"index", i},
                                        {"text", c.text},
                                        {"logprobs", logprobs},
                                        {"finish_reason", finish_name(c.last.finish)}});
    }
    json body = {{"id", cid},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", model_id},
                 {"choices", out_choices},
                 {"usage", finish_call(200)}};
    const Reply reply{http::status::ok, dump_json(body), "application/json", rate_headers, false};
    const bool ok = co_await ex.out.send(reply);
    co_return ok;
  }

  // Streaming: server-sent events in HTTP chunks.
  Reply head{http::status::ok, "", "text/event-stream", rate_headers, false};
  head.headers.emplace_back("Cache-Control", "no-cache");
  const bool started = co_await ex.out.begin_stream(head);
  auto emit = [&](const std::string& data) -> net::awaitable<bool> {
    const std::string frame = "data: " + data + "\n\n";
    const bool wrote = co_await ex.out.write_chunk(frame);
    co_return wrote;
  };
  bool alive = started;
  bool ended = false;  // finish_call ran
  std::vector<bool> first_chunk(static_cast<size_t>(n), true);
  while (alive && finished < n) {
    std::deque<std::pair<int, HostEvent>> batch = co_await next_events();
    if (pending->hung_up) {
      alive = false;
      break;
    }
    for (auto& [i, ev] : batch) {
      if (!alive) break;
      Choice& c = choices[static_cast<size_t>(i)];
      if (c.done) continue;
      c.last.n_tokens = ev.n_tokens;
      if (ev.finish == HostFinish::kError) {
        const std::string data = error_body(from_status(ev.error));
        c.last = std::move(ev);
        alive = co_await emit(data);
        c.done = true;
        finished = n;  // an error ends the whole call
        cancel_all();
        (void)finish_call(500);
        ended = true;
        break;
      }
      if (!ev.text.empty() || !ev.logprobs.empty() || ev.finish != HostFinish::kNone) {
        const json finish = ev.finish == HostFinish::kNone ? json(nullptr) : json(finish_name(ev.finish));
        const bool lp = r.logprobs >= 0;
        json logprobs = !lp ? json(nullptr) : chat ? chat_logprobs(ev.logprobs) : completion_logprobs(ev.logprobs, c.text_offset);
        json choice;
        if (chat) {
          json delta = json::object();
          if (first_chunk[static_cast<size_t>(i)]) delta["role"] = "assistant";
          if (!ev.text.empty() || first_chunk[static_cast<size_t>(i)]) delta["content"] = ev.text;
          choice = {{"index", i}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
        } else {
          choice = {{"index", i}, {"text", ev.text}, {"logprobs", logprobs}, {"finish_reason", finish}};
        }
        first_chunk[static_cast<size_t>(i)] = false;
        json chunk = {{"id", cid},
                      {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_id},
                      {"choices", json::array({choice})}};
        if (r.include_usage) chunk["usage"] = nullptr;
        const std::string data = dump_json(chunk);
        alive = co_await emit(data);
      }
      if (ev.finish != HostFinish::kNone) {
        c.done = true;
        ++finished;
        c.last = std::move(ev);
        if (finished == n) {
          const json usage = finish_call(200);
          ended = true;
          if (alive && r.include_usage) {
            json u = {{"id", cid},
                      {"object", chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created},
                      {"model", model_id},
                      {"choices", json::array()},
                      {"usage", usage}};
            const std::string data = dump_json(u);
            alive = co_await emit(data);
          }
        }
      }
    }
  }
  stop_watching();
  if (!alive) {
    if (!ended) {
      hung_up();
    } else {
      cancel_all();
    }
    co_return false;
  }
  const std::string done_marker = "[DONE]";
  if (!co_await emit(done_marker)) co_return false;
  const bool closed = co_await ex.out.end_stream();
  co_return closed;
}

}  // namespace sn::daemon
