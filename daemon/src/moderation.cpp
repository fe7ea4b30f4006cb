// Sensitive-term moderation (moderation.h).
#include "supernode/daemon/moderation.h"

namespace sn::daemon {

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

bool ModerationTerms::input_hit(std::string_view text) const {
  if (input.empty()) return false;
  const std::string lower = ascii_lower(text);
  for (const std::string& t : input) {
    if (!t.empty() && lower.find(t) != std::string::npos) return true;
  }
  return false;
}

void Moderation::set_terms(const std::vector<storage::ModerationTerm>& terms) {
  auto next = std::make_shared<ModerationTerms>();
  for (const storage::ModerationTerm& t : terms) {
    const std::string term = ascii_lower(t.term);
    if (term.empty()) continue;
    if (t.scope == "input" || t.scope == "both") next->input.push_back(term);
    if (t.scope == "output" || t.scope == "both") next->output.push_back(term);
  }
  MutexLock lock(mu_);
  terms_ = std::move(next);
}

std::shared_ptr<const ModerationTerms> Moderation::snapshot() const {
  MutexLock lock(mu_);
  return terms_;
}

std::string ContentFilter::push(std::string_view text) {
  if (matcher_.stopped()) return {};
  original_.append(text);
  const std::string safe = matcher_.push(ascii_lower(text));
  std::string out = original_.substr(0, safe.size());
  if (matcher_.stopped()) {
    original_.clear();
  } else {
    original_.erase(0, safe.size());
  }
  return out;
}

std::string ContentFilter::flush() {
  matcher_.flush();
  std::string out;
  out.swap(original_);
  return out;
}

}  // namespace sn::daemon
