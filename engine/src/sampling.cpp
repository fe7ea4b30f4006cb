// Sampler and StopMatcher. See sampling.h.
#include "supernode/engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace sn::engine {

Status SamplingParams::validate() const {
  auto bad = [](const char* name, const std::string& why) {
    return Status::invalid_argument(name, why);
  };
  if (!(temperature >= 0.0f && temperature <= 100.0f)) return bad("temperature", "must be between 0 and 100");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return bad("top_p", "must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return bad("min_p", "must be in [0, 1]");
  if (!(repeat_penalty > 0.0f && repeat_penalty <= 10.0f)) return bad("repeat_penalty", "must be in (0, 10]");
  if (repeat_last_n < -1) return bad("repeat_last_n", "must be -1 (all), 0 (off) or positive");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) return bad("frequency_penalty", "must be in [-2, 2]");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) return bad("presence_penalty", "must be in [-2, 2]");
  return Status::ok();
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  seed_ = params.seed;
  if (seed_ == 0xFFFFFFFFu) seed_ = std::random_device{}();
  rng_.seed(seed_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  const bool penalize = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                        params_.presence_penalty != 0.0f;
  if (params_.temperature <= 0.0f && !penalize) {  // plain greedy: the first largest logit
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return static_cast<int32_t>(best);
  }
  cand_.resize(n);
  for (size_t i = 0; i < n; ++i) cand_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};

  // Penalties over the recent window.
  if (penalize && params_.repeat_last_n != 0 && !history.empty()) {
    size_t window = params_.repeat_last_n < 0 ? history.size()
                                              : std::min<size_t>(history.size(), params_.repeat_last_n);
    std::unordered_map<int32_t, int> counts;
    for (size_t i = history.size() - window; i < history.size(); ++i) ++counts[history[i]];
    for (const auto& [id, count] : counts) {
      if (id < 0 || static_cast<size_t>(id) >= n) continue;
      float& l = cand_[id].logit;
      l = l <= 0 ? l * params_.repeat_penalty : l / params_.repeat_penalty;
      l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
    }
  }

  if (params_.temperature <= 0.0f) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
      if (cand_[i].logit > cand_[best].logit) best = i;
    }
    return cand_[best].id;
  }

  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  size_t keep = n;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    keep = params_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(keep);

  auto softmax = [this](float temp) {
    const float mx = cand_[0].logit;
    double sum = 0;
    for (Candidate& c : cand_) {
      c.p = std::exp((c.logit - mx) / temp);
      sum += c.p;
    }
    for (Candidate& c : cand_) c.p = static_cast<float>(c.p / sum);
  };

  if (params_.top_p < 1.0f) {
    softmax(1.0f);
    double cum = 0;
    size_t last = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= params_.top_p) {
        last = i + 1;
        break;
      }
    }
    cand_.resize(std::max<size_t>(last, 1));
  }
  if (params_.min_p > 0.0f) {
    const float threshold = cand_[0].logit + std::log(params_.min_p);
    size_t last = 1;
    while (last < cand_.size() && cand_[last].logit >= threshold) ++last;
    cand_.resize(last);
  }

  softmax(params_.temperature);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const double r = uni(rng_);
  double cum = 0;
  for (const Candidate& c : cand_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return cand_.back().id;
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    first = std::min(first, pending_.find(s));
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace sn::engine
