// The engine loop (engine_loop.h): one schedule -> forward -> sample -> update round per
// step(). Single-threaded; the forward itself spreads over the backend's thread pool.
#include "supernode/scheduler/engine_loop.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "supernode/base/check.h"

namespace sn::scheduler {

EngineLoop::EngineLoop(const engine::Model& model, hal::CpuBackend& backend, const SchedulerConfig& config,
                       const Clock& clock)
    : model_(model),
      clock_(clock),
      scheduler_(config, clock),
      cache_(model.config(), config.kv.num_blocks, config.kv.block_size),
      forward_(model, backend, cache_) {
  const engine::Tokenizer& tok = model.tokenizer();
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    if (tok.is_eog(id)) eog_.push_back(id);
  }
}

Status EngineLoop::add(GenerationRequest request) {
  const int32_t n_vocab = model_.config().n_vocab;
  const std::string what = "request " + std::to_string(request.id);
  if (request.prompt.empty()) return Status::invalid_argument(what, "the prompt is empty");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      return Status::invalid_argument(what, "prompt token " + std::to_string(t) + " is outside the vocabulary (0.." +
                                                std::to_string(n_vocab - 1) + ")");
    }
  }
  SN_RETURN_IF_ERROR(request.sampling.validate());
  if (live_.count(request.id) != 0) return Status::invalid_argument(what, "the id is already live");

  Request r;
  r.id = request.id;
  r.tenant = std::move(request.tenant);
  r.priority = request.priority;
  r.prompt = request.prompt;
  r.max_tokens = request.max_tokens;
  r.stop_token_ids = std::move(request.extra_stop_token_ids);
  if (!request.ignore_eos) r.stop_token_ids.insert(r.stop_token_ids.end(), eog_.begin(), eog_.end());
  r.cache_salt = std::move(request.cache_salt);
  SN_RETURN_IF_ERROR(scheduler_.add_request(std::move(r)));

  if (request.logprobs > 20) return Status::invalid_argument(what, "at most 20 top logprobs");
  Live live{engine::Sampler(request.sampling), std::move(request.prompt), request.logprobs};
  live.history.reserve(live.history.size() + static_cast<size_t>(request.max_tokens));
  live_.emplace(request.id, std::move(live));
  return Status::ok();
}

TokenLogprobs EngineLoop::token_logprobs(std::span<const float> logits, int32_t token, int32_t top_n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobs out;
  out.logprob = static_cast<float>(logits[static_cast<size_t>(token)] - log_z);
  if (top_n > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    const size_t k = std::min(ids.size(), static_cast<size_t>(top_n));
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    });
    for (size_t i = 0; i < k; ++i) {
      out.top.emplace_back(ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - log_z));
    }
  }
  return out;
}

Status EngineLoop::enable_tiers(storage::Env& env, KvTiersConfig config, const storage::DiskScanProgress& progress) {
  SN_CHECK(tiers_ == nullptr && stats_.steps == 0) << "enable_tiers once, before the first step";
  if (config.model_id.empty()) config.model_id = scheduler_.config().model_id;
  Result<std::unique_ptr<KvTiers>> tiers = KvTiers::open(env, config, block_io_, progress);
  if (!tiers.ok()) return tiers.status();
  tiers_ = std::move(*tiers);
  scheduler_.attach_tiers(tiers_.get());
  return Status::ok();
}

int32_t EngineLoop::spill_cached_blocks() {
  const int32_t n = scheduler_.evict_free_cached();
  if (tiers_ != nullptr) tiers_->flush();
  return n;
}

int32_t EngineLoop::persist_cached_blocks(int32_t max) {
  if (tiers_ == nullptr) return 0;
  int32_t n = 0;
  for (const auto& [block, key] : scheduler_.take_uncopied_cached(max)) n += tiers_->copy_down(block, key) ? 1 : 0;
  return n;
}

Status EngineLoop::cancel(RequestId id) {
  SN_RETURN_IF_ERROR(scheduler_.cancel(id));
  live_.erase(id);
  return Status::ok();
}

Result<std::vector<RequestEvent>> EngineLoop::step() {
  const int64_t t0 = clock_.now_ns();
  SchedulerOutput out = scheduler_.schedule();

  // One batch over every scheduled sequence; sequence i uses block table i.
  batch_.clear();
  tables_.clear();
  for (size_t i = 0; i < out.sequences.size(); ++i) {
    const ScheduledSequence& s = out.sequences[i];
    tables_.push_back(s.block_table.data());
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    for (int32_t j = 0; j < n; ++j) {
      batch_.add(s.tokens[static_cast<size_t>(j)], s.start_position + j, static_cast<int32_t>(i),
                 s.want_token && j == n - 1);
    }
  }
  int64_t t1 = clock_.now_ns();
  stats_.schedule_ns += t1 - t0;
  ++stats_.steps;
  if (out.sequences.empty() && tiers_ != nullptr && scheduler_.stats().fetching > 0) {
    // Nothing to compute until a disk read lands: wait for it rather than spin.
    (void)tiers_->wait_completed(5'000);
    t1 = clock_.now_ns();
  }

  if (batch_.size() > 0) {
    Status st = forward_.run(batch_, tables_, &logits_);
    if (!st.is_ok()) {
      // Drop the step's requests so the scheduler stays consistent, then report.
      for (const ScheduledSequence& s : out.sequences) {
        (void)scheduler_.cancel(s.id);
        live_.erase(s.id);
      }
      (void)scheduler_.update_from_output(out, StepResult{});
      return st;
    }
  }
  const int64_t t2 = clock_.now_ns();
  stats_.forward_ns += t2 - t1;
  stats_.tokens_computed += static_cast<int64_t>(batch_.size());

  // Logits rows come in batch order: one per sequence with want_token, in sequence order.
  const size_t n_vocab = static_cast<size_t>(model_.config().n_vocab);
  result_.sequences.clear();
  size_t row = 0;
  for (const ScheduledSequence& s : out.sequences) {
    SequenceResult r;
    r.id = s.id;
    if (s.want_token) {
      SN_CHECK((row + 1) * n_vocab <= logits_.size()) << "forward returned " << logits_.size() / n_vocab << " rows";
      const std::span<const float> logits(logits_.data() + row * n_vocab, n_vocab);
      ++row;
      auto it = live_.find(s.id);
      SN_CHECK(it != live_.end()) << "scheduled request " << s.id << " has no sampler";
      const int32_t position = s.start_position + static_cast<int32_t>(s.tokens.size());
      if (observer_) observer_(s.id, position, logits);
      r.token = it->second.sampler.sample(logits, it->second.history);
      ++stats_.tokens_sampled;
      if (it->second.logprobs >= 0) step_logprobs_.emplace_back(s.id, token_logprobs(logits, *r.token, it->second.logprobs));
    }
    result_.sequences.push_back(r);
  }
  const int64_t t3 = clock_.now_ns();
  stats_.sample_ns += t3 - t2;

  std::vector<RequestEvent> events = scheduler_.update_from_output(out, result_);
  if (!step_logprobs_.empty()) {
    for (RequestEvent& ev : events) {
      if (!ev.token) continue;
      for (auto& [id, lp] : step_logprobs_) {
        if (id == ev.id) ev.logprobs = std::move(lp);
      }
    }
    step_logprobs_.clear();
  }
  for (const RequestEvent& ev : events) {
    auto it = live_.find(ev.id);
    if (it == live_.end()) continue;
    if (ev.finish) {
      live_.erase(it);
    } else if (ev.token) {
      it->second.history.push_back(*ev.token);
    }
  }
  stats_.update_ns += clock_.now_ns() - t3;
  return events;
}

}  // namespace sn::scheduler
