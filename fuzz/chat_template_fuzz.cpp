// libFuzzer target: chat templates (engine/chat_template.h), our Jinja-subset interpreter.
// The input is a template source, optionally followed by the separator line
// "\n---json---\n" and a JSON document: the template is parsed and rendered with fixed
// messages (a system prompt, a user/assistant turn with a tool call, a tool result) and,
// when the JSON part parses, with it too: an array is the messages, an object gives
// messages/tools/add_generation_prompt and the rest as extra variables (and is also passed
// whole to render_with). Parse and render either succeed or return a Status with a message;
// limits (loop iterations, output bytes) are lower than the defaults so that every input
// stays fast, and the call depth is the default one. json_parse is fuzzed on the JSON part.
// Seeds: corpus/chat_template/; dictionary: chat_template.dict.
// Thread safety: libFuzzer calls the entry points from one thread.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "supernode/base/check.h"
#include "supernode/engine/chat_template.h"

namespace {

using sn::Result;
using sn::engine::ChatTemplate;
using sn::engine::ChatTemplateInputs;
using sn::engine::JsonValue;

constexpr std::string_view kSeparator = "\n---json---\n";

constexpr const char* kFixedMessages = R"([
  {"role": "system", "content": "You are terse."},
  {"role": "user", "content": "What is 2+2? <b>&</b>"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
  {"role": "tool", "tool_call_id": "call_1", "content": "4"},
  {"role": "assistant", "content": "4\u00e9"},
  {"role": "user", "content": ["not", "a", "string"]}
])";

constexpr const char* kFixedTools = R"([{"type": "function", "function": {"name": "add",
  "description": "Adds", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}])";

void check_failure(const sn::Status& s) { SN_CHECK(!s.is_ok() && !s.message().empty()) << s.to_string(); }

std::tm fixed_time() {
  std::tm t{};
  t.tm_year = 124;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_hour = 12;
  return t;
}

void render(const ChatTemplate& t, const ChatTemplateInputs& in) {
  Result<std::string> out = t.render(in);
  if (!out.ok()) check_failure(out.status());
}

ChatTemplateInputs fixed_inputs() {
  ChatTemplateInputs in;
  Result<JsonValue> msgs = sn::engine::json_parse(kFixedMessages);
  Result<JsonValue> tools = sn::engine::json_parse(kFixedTools);
  SN_CHECK(msgs.ok() && tools.ok());
  in.messages = std::move(*msgs);
  in.tools = std::move(*tools);
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.extra_variables.emplace_back("enable_thinking", JsonValue::boolean(false));
  in.now = fixed_time();
  return in;
}

void render_json_inputs(const ChatTemplate& t, const JsonValue& doc) {
  ChatTemplateInputs in;
  in.now = fixed_time();
  if (doc.kind == JsonValue::Kind::kArray) {
    in.messages = doc;
    render(t, in);
    return;
  }
  if (doc.kind != JsonValue::Kind::kObject) return;
  for (const auto& [key, value] : doc.object) {
    if (key == "messages") {
      in.messages = value;
    } else if (key == "tools") {
      in.tools = value;
    } else if (key == "add_generation_prompt") {
      in.add_generation_prompt = value.kind == JsonValue::Kind::kBool && value.b;
    } else if (key == "bos_token" && value.kind == JsonValue::Kind::kString) {
      in.bos_token = value.s;
    } else if (key == "eos_token" && value.kind == JsonValue::Kind::kString) {
      in.eos_token = value.s;
    } else {
      in.extra_variables.emplace_back(key, value);
    }
  }
  render(t, in);
  Result<std::string> out = t.render_with(doc.object, fixed_time());
  if (!out.ok()) check_failure(out.status());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ChatTemplateInputs kFixed = fixed_inputs();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view source = input;
  std::string_view json;
  if (size_t at = input.find(kSeparator); at != std::string_view::npos) {
    source = input.substr(0, at);
    json = input.substr(at + kSeparator.size());
  }

  sn::engine::ChatTemplateLimits limits;
  limits.max_output_bytes = 256 << 10;
  limits.max_loop_iterations = 20'000;
  Result<ChatTemplate> t = ChatTemplate::parse(source, limits);
  Result<JsonValue> doc = sn::engine::json_parse(json);
  if (!doc.ok()) check_failure(doc.status());
  if (!t.ok()) {
    check_failure(t.status());
    return 0;
  }
  render(*t, kFixed);
  if (doc.ok()) render_json_inputs(*t, *doc);
  return 0;
}
