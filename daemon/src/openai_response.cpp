// OpenAI response objects (openai_response.h).
#include "openai_response.h"

namespace sn::daemon {

const char* finish_name(HostFinish f) {
  switch (f) {
    case HostFinish::kStop: return "stop";
    case HostFinish::kLength: return "length";
    case HostFinish::kContentFilter: return "content_filter";
    default: return nullptr;
  }
}

namespace {

json bytes_json(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

json chat_logprobs(const std::vector<HostLogprob>& lps) {
  json content = json::array();
  for (const HostLogprob& lp : lps) {
    json top = json::array();
    for (const auto& [tok, v] : lp.top) top.push_back({{"token", tok}, {"logprob", v}, {"bytes", bytes_json(tok)}});
    content.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"bytes", bytes_json(lp.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs(const std::vector<HostLogprob>& lps, int64_t& text_offset) {
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  for (const HostLogprob& lp : lps) {
    tokens.push_back(lp.token);
    values.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [tok, v] : lp.top) {
      if (!top.contains(tok)) top[tok] = v;
    }
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += static_cast<int64_t>(lp.token.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace sn::daemon
