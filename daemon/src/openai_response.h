// The OpenAI response objects the server writes: logprobs (completions' and chat's
// shapes), usage, finish reasons. Serialization replaces bytes that are not UTF-8.
// Thread safety: free functions; safe concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "openai_request.h"
#include "supernode/daemon/model_host.h"

namespace sn::daemon {

// "stop", "length", "content_filter"; nullptr while not finished (and for errors).
[[nodiscard]] const char* finish_name(HostFinish f);

// Chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], refusal}.
[[nodiscard]] json chat_logprobs(const std::vector<HostLogprob>& lps);
// Completions: {tokens, token_logprobs, top_logprobs, text_offset}; `text_offset` is the
// byte offset of the first token and is advanced past the last.
[[nodiscard]] json completion_logprobs(const std::vector<HostLogprob>& lps, int64_t& text_offset);

// {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details: {cached_tokens}}.
[[nodiscard]] json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// JSON text of a value holding client or model text: invalid UTF-8 replaced, never throws
// on encoding.
[[nodiscard]] std::string dump_json(const json& j);

}  // namespace sn::daemon
