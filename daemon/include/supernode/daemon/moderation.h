// Content moderation by sensitive terms (the word list part; semantic interception by a
// guard model comes on top of it). The term list lives in the StateStore (edited through
// the admin socket); the daemon keeps a snapshot here that every request reads:
//   input terms:  a prompt (its text as the model sees it, chat template applied) holding
//                 one is refused with 400, code "content_filter";
//   output terms: generation that produces one ends there with finish_reason
//                 "content_filter"; the term and what follows it never reach the client
//                 (text that may be the start of a term is held back until it cannot be).
// Matching is case-insensitive for ASCII letters and byte-exact otherwise.
//
//   Moderation m;
//   m.set_terms(*state.list_moderation_terms());
//   if (m.snapshot()->input_hit(prompt_text)) ... refuse ...
//   ContentFilter f(m.snapshot()->output);   // per request, on the engine thread
//   std::string safe = f.push(new_text);     // f.stopped(): a term appeared
//
// Thread safety: Moderation's methods may be called from any thread; a ContentFilter
// belongs to one request.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/mutex.h"
#include "supernode/engine/sampling.h"
#include "supernode/storage/state_store.h"

namespace sn::daemon {

struct ModerationTerms {
  std::vector<std::string> input;   // lowercase
  std::vector<std::string> output;  // lowercase
  // Whether `text` holds an input term (case-insensitive).
  [[nodiscard]] bool input_hit(std::string_view text) const;
};

class Moderation {
 public:
  Moderation() : terms_(std::make_shared<const ModerationTerms>()) {}
  void set_terms(const std::vector<storage::ModerationTerm>& terms);
  [[nodiscard]] std::shared_ptr<const ModerationTerms> snapshot() const;

 private:
  mutable Mutex mu_;
  std::shared_ptr<const ModerationTerms> terms_ SN_GUARDED_BY(mu_);
};

// The output side for one request: a stop-string matcher over the lowercased text that
// releases the original bytes (ASCII lowercasing keeps lengths).
class ContentFilter {
 public:
  explicit ContentFilter(std::vector<std::string> lowercase_terms) : matcher_(std::move(lowercase_terms)) {}
  std::string push(std::string_view text);
  std::string flush();
  [[nodiscard]] bool stopped() const { return matcher_.stopped(); }

 private:
  engine::StopMatcher matcher_;
  std::string original_;  // the bytes the matcher holds, in their original case
};

[[nodiscard]] std::string ascii_lower(std::string_view text);

}  // namespace sn::daemon
