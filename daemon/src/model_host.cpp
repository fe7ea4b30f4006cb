// ModelHost (model_host.h): the engine thread takes submissions and cancellations between
// steps, runs one continuous-batching step while there is work, and turns each sampled
// token into text for its request: detokenized incrementally (whole UTF-8 characters only),
// passed through the stop-string matcher, then handed to the request's sink.
#include "supernode/daemon/model_host.h"

#include <chrono>
#include <limits>
#include <cstdio>
#include <utility>

#include "supernode/base/check.h"

namespace sn::daemon {

ModelHost::ModelHost(const ModelHostOptions& options) : options_(options) {}

Result<std::unique_ptr<ModelHost>> ModelHost::load(const ModelHostOptions& options) {
  const std::string what = "model " + options.id;
  if (options.id.empty()) return Status::invalid_argument(what, "empty model id");
  if (options.context < 16 || options.max_seqs < 1 || options.max_waiting < 1 || options.batch_tokens < 1) {
    return Status::invalid_argument(what, "context must be at least 16 tokens, max_seqs and max_waiting at least 1");
  }
  std::unique_ptr<ModelHost> h(new ModelHost(options));
  h->created_s_ = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  Result<std::unique_ptr<engine::Model>> m = engine::Model::load(options.path);
  if (!m.ok()) return m.status().with_context(what);
  h->model_ = std::move(*m);
  Result<engine::GgufChatTemplate> tmpl = engine::chat_template_from_gguf(h->model_->gguf());
  if (tmpl.ok()) {
    Result<engine::ChatTemplate> parsed = engine::ChatTemplate::parse(tmpl->source);
    if (parsed.ok()) {
      h->chat_.emplace(std::move(*parsed));
      h->bos_text_ = tmpl->bos_token;
      h->eos_text_ = tmpl->eos_token;
    } else {
      h->chat_status_ = parsed.status().with_context(what);
    }
  } else {
    h->chat_status_ = tmpl.status().with_context(what);
  }
  h->pool_ = std::make_unique<hal::ThreadPool>(hal::ThreadPool::Options{.n_threads = options.threads, .pin = true});
  h->backend_ = std::make_unique<hal::CpuBackend>(*h->pool_, hal::best_isa());
  h->clock_ = std::make_unique<scheduler::SteadyClock>();
  constexpr int32_t kBlockSize = 16;
  scheduler::SchedulerConfig c;
  c.model_id = options.id + "@" + options.path;
  c.kv.block_size = kBlockSize;
  c.kv.num_blocks = options.kv_blocks > 0 ? options.kv_blocks
                                          : options.max_seqs * ((options.context + kBlockSize - 1) / kBlockSize);
  c.max_num_seqs = options.max_seqs;
  c.max_waiting = options.max_waiting;
  c.max_num_batched_tokens = options.batch_tokens;
  h->loop_ = std::make_unique<scheduler::EngineLoop>(*h->model_, *h->backend_, c, *h->clock_);
  if (options.tiers.host_bytes > 0 || !options.tiers.disk_dirs.empty()) {
    SN_RETURN_IF_ERROR(h->loop_->enable_tiers(storage::posix_env(), options.tiers).with_context(what));
  }
  ModelHost* self = h.get();
  h->engine_ = std::thread([self] { self->engine_main(); });
  return h;
}

ModelHost::~ModelHost() { stop(); }

void ModelHost::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (engine_.joinable() && engine_.get_id() != std::this_thread::get_id()) engine_.join();
}

bool ModelHost::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
}

int32_t ModelHost::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

void ModelHost::request_ended() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

Result<uint64_t> ModelHost::submit(HostRequest request, HostSink sink) {
  const int32_t n_vocab = model_->config().n_vocab;
  if (request.prompt.empty()) return Status::invalid_argument("prompt", "is empty");
  if (request.max_tokens < 1) return Status::invalid_argument("max_tokens", "must be at least 1");
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (total > options_.context) {
    return Status::invalid_argument(
        "prompt", "this model's context is " + std::to_string(options_.context) + " tokens; the prompt has " +
                      std::to_string(request.prompt.size()) + " and max_tokens asks for " +
                      std::to_string(request.max_tokens) + " more");
  }
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) return Status::invalid_argument("prompt", "token id " + std::to_string(t) + " out of range");
  }
  SN_RETURN_IF_ERROR(request.sampling.validate());
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return Status::resource_exhausted("model " + options_.id, "shutting down");
  if (queued_ >= options_.max_waiting) {
    return Status::resource_exhausted("model " + options_.id,
                                      "busy: " + std::to_string(queued_) + " requests waiting; retry later");
  }
  const uint64_t id = next_id_++;
  ++queued_;
  ++in_flight_;
  inbox_.push_back(Submission{id, std::move(request), std::move(sink)});
  cv_.notify_all();
  return id;
}

void ModelHost::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancels_.push_back(id);
  cv_.notify_all();
}

ModelHost::Stats ModelHost::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ModelHost::finish(uint64_t id, Live& live, HostFinish how, const scheduler::RequestMetrics& metrics, Status error) {
  HostEvent ev;
  if (how != HostFinish::kError) {
    // What the detokenizer and the content filter still hold, through the stop matcher.
    std::string rest = live.filter.push(live.detok.flush());
    if (live.filter.stopped()) {
      how = HostFinish::kContentFilter;
    } else {
      rest += live.filter.flush();
    }
    ev.text = live.stops.push(rest);
    if (!live.stops.stopped()) ev.text += live.stops.flush();
  }
  ev.n_tokens = live.n_tokens;
  ev.finish = how;
  ev.error = std::move(error);
  ev.metrics = metrics;
  HostSink sink = std::move(live.sink);
  live_.erase(id);
  sink(ev);
  request_ended();
}

void ModelHost::deliver(const scheduler::RequestEvent& ev) {
  auto it = live_.find(ev.id);
  if (it == live_.end()) return;
  Live& live = it->second;
  HostEvent out;
  if (ev.token) {
    ++live.n_tokens;
    const engine::Tokenizer& tok = model_->tokenizer();
    const bool eog = tok.is_eog(*ev.token);
    if (!eog) out.text = live.stops.push(live.filter.push(live.detok.push(*ev.token)));
    if (ev.logprobs && !eog) {
      HostLogprob lp{tok.token_to_piece(*ev.token), ev.logprobs->logprob, {}};
      for (const auto& [id, v] : ev.logprobs->top) lp.top.emplace_back(tok.token_to_piece(id), v);
      out.logprobs.push_back(std::move(lp));
    }
  }
  if (live.stops.stopped() || live.filter.stopped()) {
    // A stop string or a moderated term completed: the request ends here; what follows it
    // (and the term) is never shown.
    (void)loop_->cancel(ev.id);
    const std::optional<scheduler::RequestMetrics> m = loop_->scheduler().metrics(ev.id);
    HostSink sink = std::move(live.sink);
    HostEvent last;
    last.text = std::move(out.text);
    last.logprobs = std::move(out.logprobs);
    last.n_tokens = live.n_tokens;
    last.finish = live.filter.stopped() ? HostFinish::kContentFilter : HostFinish::kStop;
    last.metrics = ev.finish ? ev.metrics : (m ? *m : ev.metrics);
    live_.erase(it);
    sink(last);
    request_ended();
    return;
  }
  if (ev.finish) {
    if (!out.text.empty() || !out.logprobs.empty()) {
      out.n_tokens = live.n_tokens;
      live.sink(out);
    }
    const HostFinish how = *ev.finish == scheduler::FinishReason::kLength ? HostFinish::kLength : HostFinish::kStop;
    finish(ev.id, live, how, ev.metrics);
    return;
  }
  if (!out.text.empty() || !out.logprobs.empty()) {
    out.n_tokens = live.n_tokens;
    live.sink(out);
  }
}

void ModelHost::publish_stats() {
  const scheduler::SchedulerStats ss = loop_->scheduler().stats();
  std::lock_guard<std::mutex> lock(mu_);
  queued_ = ss.waiting + static_cast<int32_t>(inbox_.size());
  stats_.running = ss.running;
  stats_.waiting = ss.waiting;
  stats_.steps = static_cast<int64_t>(loop_->stats().steps);
  stats_.tokens_generated = loop_->stats().tokens_sampled;
  stats_.tokens_computed = loop_->stats().tokens_computed;
  stats_.preemptions = ss.preemptions;
  stats_.kv = loop_->scheduler().kv().pool().stats();
  if (loop_->tiers() != nullptr) stats_.tiers = loop_->tiers()->stats();
}

void ModelHost::engine_main() {
  std::deque<Submission> inbox;
  std::vector<uint64_t> cancels;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || !cancels_.empty() || loop_->has_work(); });
      if (stop_) break;
      progress_.fetch_add(1, std::memory_order_relaxed);
      inbox.swap(inbox_);
      cancels.swap(cancels_);
    }
    for (uint64_t id : cancels) {
      auto it = live_.find(id);
      if (it == live_.end()) continue;
      (void)loop_->cancel(id);
      live_.erase(it);
      request_ended();
    }
    cancels.clear();
    for (Submission& s : inbox) {
      scheduler::GenerationRequest g;
      g.id = s.id;
      g.prompt = std::move(s.request.prompt);
      g.max_tokens = s.request.max_tokens;
      g.sampling = s.request.sampling;
      g.ignore_eos = s.request.ignore_eos;
      g.tenant = std::move(s.request.tenant);
      g.cache_salt = std::move(s.request.cache_salt);
      g.logprobs = s.request.logprobs;
      Status st = loop_->add(std::move(g));
      if (!st.is_ok()) {
        HostEvent ev;
        ev.finish = HostFinish::kError;
        ev.error = st;
        s.sink(ev);
        request_ended();
        continue;
      }
      live_.emplace(s.id, Live{std::move(s.sink), engine::IncrementalDetokenizer(model_->tokenizer()),
                               engine::StopMatcher(std::move(s.request.stop)),
                               ContentFilter(std::move(s.request.filter_terms)), 0});
    }
    inbox.clear();
    if (!loop_->has_work()) {
      (void)loop_->persist_cached_blocks(std::numeric_limits<int32_t>::max());  // what cancelled requests cached
      publish_stats();  // cancellations changed them
      continue;
    }
    Result<std::vector<scheduler::RequestEvent>> events = loop_->step();
    if (!events.ok()) {
      // The loop dropped the step's requests: tell each one that is gone.
      std::fprintf(stderr, "supernoded: model %s: step failed: %s\n", options_.id.c_str(),
                   events.status().to_string().c_str());
      std::vector<uint64_t> gone;
      for (const auto& [id, live] : live_) {
        if (!loop_->scheduler().metrics(id)) gone.push_back(id);
      }
      for (uint64_t id : gone) finish(id, live_.at(id), HostFinish::kError, {}, events.status());
    } else {
      for (const scheduler::RequestEvent& ev : *events) deliver(ev);
    }
    publish_stats();
    if (!loop_->has_work()) {
      // Idle now: copy newly cached blocks down to host RAM and (behind) disk, so that a
      // restart, even after a crash, finds them there.
      (void)loop_->persist_cached_blocks(std::numeric_limits<int32_t>::max());
    }
  }
  if (loop_->tiers() != nullptr) {
    (void)loop_->persist_cached_blocks(std::numeric_limits<int32_t>::max());
    loop_->tiers()->flush();  // the disk writes behind are done before we go
  }
  // Shutting down: every live request ends with an error.
  for (auto it = live_.begin(); it != live_.end();) {
    HostEvent ev;
    ev.finish = HostFinish::kError;
    ev.error = Status::resource_exhausted("model " + options_.id, "shutting down");
    HostSink sink = std::move(it->second.sink);
    it = live_.erase(it);
    sink(ev);
    request_ended();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (Submission& s : inbox_) {
    HostEvent ev;
    ev.finish = HostFinish::kError;
    ev.error = Status::resource_exhausted("model " + options_.id, "shutting down");
    s.sink(ev);
  }
  inbox_.clear();
  in_flight_ = 0;
  idle_cv_.notify_all();
}

}  // namespace sn::daemon
