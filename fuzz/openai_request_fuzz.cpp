// libFuzzer target: the OpenAI request mapping (daemon/src/openai_request.h) on arbitrary
// bodies, as the server runs it: json_depth_within, parse_openai_request for
// /v1/completions and /v1/chat/completions, and for a request that parses, prepare_prompt
// against a tiny generated model (SPM vocabulary, a ChatML-style template); error_body of
// every error, and of the input itself as a message, must be a JSON object.
// Seeds: corpus/openai_request/; dictionary: openai_request.dict.
// Thread safety: libFuzzer calls the entry points from one thread.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "openai_request.h"
#include "supernode/base/check.h"
#include "supernode/engine/chat_template.h"
#include "supernode/engine/gguf.h"
#include "supernode/engine/model_gen.h"
#include "supernode/engine/tokenizer.h"

namespace {

using sn::daemon::ApiError;
using sn::daemon::OpenAiRequest;

// A ChatML-style template that uses what real ones use: roles, content, tools, tool calls,
// loop.last, filters and the BOS text.
constexpr const char* kTemplate =
    "{{ bos_token }}"
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.content is string %}{{ m.content | trim }}{% endif %}"
    "{% if m.tool_calls is defined and m.tool_calls %}"
    "{% for tc in m.tool_calls %}{{ tc.function.name }}({{ tc.function.arguments | tojson }}){% endfor %}"
    "{% endif %}<|im_end|>{% if not loop.last %}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}\n<|im_start|>assistant\n{% endif %}";

struct Fixture {
  std::unique_ptr<sn::engine::Tokenizer> tokenizer;
  std::optional<sn::engine::ChatTemplate> chat_template;
  sn::daemon::PromptModel model;
};

Fixture* fixture = nullptr;

[[noreturn]] void die(const sn::Status& s) {
  std::fprintf(stderr, "openai_request_fuzz: set-up failed: %s\n", s.to_string().c_str());
  std::abort();
}

// error_body must give a JSON object with an "error" object, whatever the message holds.
void check_error_body(const ApiError& e) {
  const std::string body = sn::daemon::error_body(e);
  const sn::daemon::json j = sn::daemon::json::parse(body, nullptr, false);
  SN_CHECK(!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) << body;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sn::engine::TinyModelSpec spec;
  spec.n_embd = 16;
  spec.n_layer = 1;
  spec.n_head = 2;
  spec.n_head_kv = 1;
  spec.n_ff = 32;
  spec.n_ctx = 256;
  spec.chat_template = kTemplate;
  sn::Result<std::string> bytes = sn::engine::generate_tiny_model(spec);
  if (!bytes.ok()) die(bytes.status());
  sn::Result<sn::engine::GgufFile> file = sn::engine::GgufFile::from_bytes("tiny.gguf", *bytes);
  if (!file.ok()) die(file.status());
  auto* fx = new Fixture;
  sn::Result<std::unique_ptr<sn::engine::Tokenizer>> tok = sn::engine::Tokenizer::from_gguf(*file);
  if (!tok.ok()) die(tok.status());
  fx->tokenizer = std::move(*tok);
  sn::Result<sn::engine::GgufChatTemplate> src = sn::engine::chat_template_from_gguf(*file);
  if (!src.ok()) die(src.status());
  sn::Result<sn::engine::ChatTemplate> tmpl = sn::engine::ChatTemplate::parse(src->source);
  if (!tmpl.ok()) die(tmpl.status());
  fx->chat_template.emplace(std::move(*tmpl));
  fx->model.tokenizer = fx->tokenizer.get();
  fx->model.chat_template = &*fx->chat_template;
  fx->model.model_id = "tiny";
  fx->model.bos_text = src->bos_token;
  fx->model.eos_text = src->eos_token;
  fixture = fx;  // lives for the process
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  ApiError echo;
  echo.message = std::string(body);
  echo.param = std::string(body.substr(0, 64));
  check_error_body(echo);

  const bool shallow = sn::daemon::json_depth_within(body, sn::daemon::kMaxJsonDepth);
  (void)sn::daemon::json_depth_within(body, 1);
  for (bool chat : {false, true}) {
    OpenAiRequest r;
    ApiError err;
    if (!sn::daemon::parse_openai_request(body, chat, r, err)) {
      SN_CHECK(!err.message.empty());
      check_error_body(err);
      continue;
    }
    SN_CHECK(shallow) << "a body nested deeper than kMaxJsonDepth was accepted";
    SN_CHECK(r.chat == chat && !r.model.empty() && r.n >= 1 && r.n <= sn::daemon::kMaxChoices);
    SN_CHECK(r.max_tokens >= 1 && r.max_tokens <= sn::daemon::kMaxTokensCeiling);
    SN_CHECK(r.stop.size() <= sn::daemon::kMaxStopStrings);
    std::vector<int32_t> tokens;
    if (sn::daemon::prepare_prompt(r, fixture->model, tokens, err)) {
      SN_CHECK(!tokens.empty());
    } else {
      SN_CHECK(!err.message.empty());
      check_error_body(err);
    }
  }
  return 0;
}
