// Turning logits into the next token, and stopping generation on stop strings.
//
// Sampler applies llama.cpp's default chain: repetition/frequency/presence penalties over
// the last `repeat_last_n` tokens, top-k, top-p, min-p, temperature, then a draw from the
// softmax with a seeded generator. temperature <= 0 is greedy (argmax after penalties).
//
//   Sampler s({.temperature = 0.8f, .top_p = 0.95f, .seed = 42});
//   int32_t next = s.sample(logits, history);
//
// StopMatcher holds back text that may be the start of a stop string, so a stop string
// never reaches the client even when it arrives split across tokens.
//
// Thread safety: both are single-stream values, used by one thread.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"

namespace sn::engine {

struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;         // <= 0: all tokens
  float top_p = 0.95f;        // 1: off
  float min_p = 0.05f;        // 0: off
  float repeat_penalty = 1.0f;     // 1: off
  int32_t repeat_last_n = 64;      // window of past tokens the penalties look at
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0xFFFFFFFFu;     // 0xFFFFFFFF: a random seed

  // Checks ranges; errors name the parameter.
  [[nodiscard]] Status validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks the next token from `logits` (n_vocab values, not modified) given the tokens so
  // far (prompt and generated).
  [[nodiscard]] int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // The seed actually used (a random one when params.seed was 0xFFFFFFFF).
  [[nodiscard]] uint64_t seed() const { return seed_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  SamplingParams params_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<Candidate> cand_;
};

// Index of the largest value (the first one on ties).
[[nodiscard]] int32_t argmax(std::span<const float> logits);

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds newly generated text; returns the text that is safe to emit now. Sets stopped()
  // when a stop string appeared (the returned text then ends just before it).
  std::string push(std::string_view text);
  // Text still held back (to emit when generation ends for another reason).
  std::string flush();
  [[nodiscard]] bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace sn::engine
