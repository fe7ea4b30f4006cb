// The OpenAI request mapping: an HTTP body of /v1/completions or /v1/chat/completions
// turned into a checked OpenAiRequest (no model needed), then into the tokens a model runs
// (render the chat template, tokenize). Also the OpenAI error object every failure maps to.
// The server calls parse_openai_request on an I/O thread (cheap and bounded: the body's
// nesting depth is checked before anything recurses) and prepare_prompt off the I/O threads
// (a template render and tokenizing are the expensive part). The fuzz target
// fuzz/openai_request_fuzz.cpp drives both.
// Thread safety: free functions over their arguments; safe concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include <boost/beast/http/status.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/engine/chat_template.h"
#include "supernode/engine/sampling.h"
#include "supernode/engine/tokenizer.h"

namespace sn::daemon {

using json = nlohmann::ordered_json;  // keys in insertion order, as OpenAI sends them

// An OpenAI-style error: status code plus {"error": {message, type, param, code}}.
struct ApiError {
  boost::beast::http::status status = boost::beast::http::status::bad_request;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

// The error body as JSON text. Never throws: bytes that are not UTF-8 (an echoed path, a
// template's message) are replaced by U+FFFD.
[[nodiscard]] std::string error_body(const ApiError& e) noexcept;
// invalid_argument -> 400, not_found -> 404, resource_exhausted -> 429 server_busy, else 500.
[[nodiscard]] ApiError from_status(const Status& s);

// Limits on what a request may ask for.
constexpr int kMaxJsonDepth = 64;            // arrays and objects nested in a body
constexpr int64_t kMaxChoices = 16;          // n
constexpr int64_t kMaxTopLogprobs = 20;      // logprobs / top_logprobs
constexpr size_t kMaxStopStrings = 4;        // as OpenAI
constexpr size_t kMaxStopBytes = 256;        // each stop string
constexpr int64_t kMaxTokensCeiling = 1 << 20;  // max_tokens before the model's context is known
constexpr size_t kMaxUserBytes = 256;
// n x max_tokens x (1 + top alternatives): the logprob entries a response may carry.
constexpr int64_t kMaxLogprobEntries = 1 << 18;

// Whether `body` nests arrays/objects at most `max_depth` deep (strings skipped, escapes
// honoured). Iterative: safe on any input. Malformed JSON passes here and fails the parse.
[[nodiscard]] bool json_depth_within(std::string_view body, int max_depth) noexcept;

// A checked request, before any model work.
struct OpenAiRequest {
  bool chat = false;  // /v1/chat/completions
  std::string model;
  // /v1/completions: the prompt as text, or as token ids.
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // /v1/chat/completions: messages with text parts joined and tool-call arguments parsed
  // (the shape templates expect), and `tools` (null when absent).
  json messages;
  json tools;
  int n = 1;
  std::string user;  // the client's end-user id, for logs only
  engine::SamplingParams sampling;
  int64_t max_tokens = 16;
  bool seeded = false;  // choice i draws with seed + i
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool stream = false;
  bool include_usage = false;
  int32_t logprobs = -1;  // >= 0: the sampled token's logprob and this many alternatives
};

// Parses and checks a body; false with `err` set (status 400, the offending param named).
[[nodiscard]] bool parse_openai_request(std::string_view body, bool chat, OpenAiRequest& out, ApiError& err);

// What a model offers for rendering a chat.
struct PromptModel {
  const engine::Tokenizer* tokenizer = nullptr;
  const engine::ChatTemplate* chat_template = nullptr;  // nullptr: completions only
  std::string model_id;
  std::optional<std::string> bos_text, eos_text;
};

// The prompt's tokens: the chat template rendered (with the generation prompt) and
// tokenized with special tokens parsed, or the completion prompt tokenized with BOS as the
// model says. False with `err` set (a template that refuses the messages or runs over its
// budget: 400; an empty prompt: 400).
[[nodiscard]] bool prepare_prompt(const OpenAiRequest& r, const PromptModel& m, std::vector<int32_t>& tokens,
                                  ApiError& err);

}  // namespace sn::daemon
