// ModelHost (model_host.h): the engine thread takes submissions and cancellations between
// steps, runs one continuous-batching step while there is work, and turns each sampled
// token into text for its request: detokenized incrementally (whole UTF-8 characters only),
// passed through the stop-string matcher, then handed to the request's sink.
#include "supernode/daemon/model_host.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "supernode/base/check.h"

namespace sn::daemon {

Result<std::string> model_fingerprint(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::io_error(path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::io_error(path, std::strerror(errno));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  Status err;
  auto hash = [&](uint64_t off, uint64_t len) {
    std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(len, 1 << 20)));
    while (len > 0 && err.is_ok()) {
      const ssize_t n = ::pread(fd, buf.data(), static_cast<size_t>(std::min<uint64_t>(len, buf.size())), static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = Status::io_error(path, n < 0 ? std::strerror(errno) : "shorter than its size");
        break;
      }
      EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
      off += static_cast<uint64_t>(n);
      len -= static_cast<uint64_t>(n);
    }
  };
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    ::close(fd);
    return Status::internal(path, "SHA-256 unavailable");
  }
  EVP_DigestUpdate(ctx.get(), &size, sizeof size);
  constexpr uint64_t kHead = 16u << 20, kSample = 4096, kSamples = 1024;
  hash(0, std::min(size, kHead));
  if (size > kHead) {
    for (uint64_t i = 0; i < kSamples && err.is_ok(); ++i) {
      const uint64_t off = kHead + (size - kHead) / kSamples * i;
      hash(off, std::min(kSample, size - off));
    }
  }
  ::close(fd);
  if (!err.is_ok()) return err;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string out = "fp:";
  char hex[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", md[i]);
    out += hex;
  }
  return out;
}

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
  // A private copy: the served file may be replaced or truncated while we serve it.
  Result<std::unique_ptr<engine::Model>> m = engine::Model::load(options.path, engine::GgufOpenMode::kPrivate);
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
  if (options.identity.empty()) {
    Result<std::string> fp = model_fingerprint(options.path);
    if (!fp.ok()) return fp.status().with_context(what);
    c.model_id = *fp;
  } else {
    c.model_id = options.identity;
  }
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
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (engine_.joinable() && engine_.get_id() != std::this_thread::get_id()) engine_.join();
}

bool ModelHost::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(mu_);
  while (in_flight_ != 0) {
    if (!idle_cv_.wait_until(mu_, deadline) && in_flight_ != 0) return false;
  }
  return true;
}

int32_t ModelHost::in_flight() const {
  MutexLock lock(mu_);
  return in_flight_;
}

void ModelHost::request_ended(const std::string& tenant) {
  MutexLock lock(mu_);
  if (auto it = tenant_in_flight_.find(tenant); it != tenant_in_flight_.end() && --it->second <= 0) {
    tenant_in_flight_.erase(it);
  }
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
  MutexLock lock(mu_);
  if (stop_) return Status::resource_exhausted("model " + options_.id, "shutting down");
  if (queued_ >= options_.max_waiting) {
    return Status::resource_exhausted("model " + options_.id,
                                      "busy: " + std::to_string(queued_) + " requests waiting; retry later");
  }
  int32_t& mine = tenant_in_flight_[request.tenant];
  if (mine >= options_.max_seqs + options_.max_waiting_per_tenant) {
    return Status::resource_exhausted("model " + options_.id,
                                      "busy: this tenant has " + std::to_string(mine) +
                                          " requests running or waiting, its share; retry later");
  }
  ++mine;
  const uint64_t id = next_id_++;
  ++queued_;
  ++in_flight_;
  inbox_.push_back(Submission{id, std::move(request), std::move(sink)});
  cv_.notify_all();
  return id;
}

void ModelHost::cancel(uint64_t id) {
  MutexLock lock(mu_);
  cancels_.push_back(id);
  cv_.notify_all();
}

ModelHost::Stats ModelHost::stats() const {
  MutexLock lock(mu_);
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
  const std::string tenant = std::move(live.tenant);
  live_.erase(id);
  sink(ev);
  sink = nullptr;  // its captures go before the request counts as ended
  request_ended(tenant);
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
    const std::string tenant = std::move(live.tenant);
    HostEvent last;
    last.text = std::move(out.text);
    last.logprobs = std::move(out.logprobs);
    last.n_tokens = live.n_tokens;
    last.finish = live.filter.stopped() ? HostFinish::kContentFilter : HostFinish::kStop;
    last.metrics = ev.finish ? ev.metrics : (m ? *m : ev.metrics);
    live_.erase(it);
    sink(last);
    sink = nullptr;
    request_ended(tenant);
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
  MutexLock lock(mu_);
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
      MutexLock lock(mu_);
      while (!(stop_ || !inbox_.empty() || !cancels_.empty() || loop_->has_work())) cv_.wait(mu_);
      if (stop_) break;
      progress_.fetch_add(1, std::memory_order_relaxed);
      inbox.swap(inbox_);
      cancels.swap(cancels_);
    }
    for (uint64_t id : cancels) {
      auto it = live_.find(id);
      if (it == live_.end()) continue;
      (void)loop_->cancel(id);
      HostEvent ev;  // what it generated, for metering; no text
      ev.n_tokens = it->second.n_tokens;
      ev.finish = HostFinish::kCancelled;
      if (std::optional<scheduler::RequestMetrics> m = loop_->scheduler().metrics(id)) ev.metrics = *m;
      HostSink sink = std::move(it->second.sink);
      const std::string tenant = std::move(it->second.tenant);
      live_.erase(it);
      sink(ev);
      sink = nullptr;
      request_ended(tenant);
    }
    cancels.clear();
    for (Submission& s : inbox) {
      scheduler::GenerationRequest g;
      g.id = s.id;
      g.prompt = std::move(s.request.prompt);
      g.max_tokens = s.request.max_tokens;
      g.sampling = s.request.sampling;
      g.ignore_eos = s.request.ignore_eos;
      g.tenant = s.request.tenant;
      g.cache_salt = std::move(s.request.cache_salt);
      g.logprobs = s.request.logprobs;
      Status st = loop_->add(std::move(g));
      if (!st.is_ok()) {
        HostEvent ev;
        ev.finish = HostFinish::kError;
        ev.error = st;
        s.sink(ev);
        s.sink = nullptr;
        request_ended(s.request.tenant);
        continue;
      }
      live_.emplace(s.id, Live{s.request.tenant, std::move(s.sink), engine::IncrementalDetokenizer(model_->tokenizer()),
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
    ev.n_tokens = it->second.n_tokens;
    HostSink sink = std::move(it->second.sink);
    it = live_.erase(it);
    sink(ev);
  }
  std::deque<Submission> never_started;
  {
    MutexLock lock(mu_);
    never_started.swap(inbox_);
  }
  for (Submission& s : never_started) {
    HostEvent ev;
    ev.finish = HostFinish::kError;
    ev.error = Status::resource_exhausted("model " + options_.id, "shutting down");
    s.sink(ev);
  }
  never_started.clear();
  MutexLock lock(mu_);
  tenant_in_flight_.clear();
  in_flight_ = 0;
  idle_cv_.notify_all();
}

}  // namespace sn::daemon
