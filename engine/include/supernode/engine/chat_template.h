// Chat templates: the Jinja2 template a GGUF stores in `tokenizer.chat_template`, rendered
// with our own Jinja2-subset interpreter exactly as Hugging Face transformers'
// apply_chat_template(..., tokenize=False) renders it (jinja2's ImmutableSandboxedEnvironment
// with trim_blocks, lstrip_blocks and loop controls; transformers' tojson, raise_exception
// and strftime_now). The daemon renders a request's messages with it before tokenizing;
// `supernode render-template` exposes it on the command line.
//
//   Result<JsonValue> msgs = json_parse(R"([{"role": "user", "content": "Hi"}])");
//   Result<ChatTemplate> t = ChatTemplate::parse(gguf_template_text);
//   ChatTemplateInputs in;
//   in.messages = *msgs;
//   in.add_generation_prompt = true;
//   Result<std::string> prompt = t->render(in);
//
// The interpreter is sandboxed: templates see only the data passed in (no host attributes),
// and a render's work, memory, nesting and output are bounded (ChatTemplateLimits), since a
// template comes with the model file and is not trusted.
// Thread safety: a parsed ChatTemplate is immutable; render() is safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supernode/base/status.h"

namespace sn::engine {

// A JSON value with objects kept in insertion order (templates print dicts in the order the
// client sent them). Integers and floats are told apart as Python's json module does.
struct JsonValue {
  enum class Kind : uint8_t { kNull, kBool, kInt, kFloat, kString, kArray, kObject };
  using Array = std::vector<JsonValue>;
  using Object = std::vector<std::pair<std::string, JsonValue>>;

  Kind kind = Kind::kNull;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  Array array;
  Object object;

  static JsonValue null() { return {}; }
  static JsonValue boolean(bool v);
  static JsonValue integer(int64_t v);
  static JsonValue number(double v);
  static JsonValue string(std::string v);
  static JsonValue make_array(Array v = {});
  static JsonValue make_object(Object v = {});

  [[nodiscard]] bool is_null() const { return kind == Kind::kNull; }
  // The member named `key` of an object, or nullptr (also when this is not an object).
  [[nodiscard]] const JsonValue* find(std::string_view key) const;
};

// Parses RFC 8259 JSON (UTF-8). Errors name the byte offset. Nesting is limited to 512 levels.
[[nodiscard]] Result<JsonValue> json_parse(std::string_view text);

// Bounds on one render; exceeding one fails the render with resource_exhausted naming
// the limit. Together they bound a render's time and memory whatever the template does.
// parse() also refuses expressions nested more than 256 levels deep (a syntax error).
struct ChatTemplateLimits {
  size_t max_output_bytes = 16u << 20;
  uint64_t max_loop_iterations = 1'000'000;  // summed over all loops of one render
  int max_call_depth = 64;                   // nested macro calls
  size_t max_source_bytes = 4u << 20;        // checked by parse()
  // Any one string, list or dict the template creates, output or not. A container counts
  // about 120 bytes per element plus the strings it holds.
  size_t max_value_bytes = 16u << 20;
  uint64_t max_alloc_bytes = 256u << 20;  // all values created in one render, summed
  // Units of work: one per statement or expression evaluated, call, loop iteration and
  // container element visited, and one per 32 bytes of string copied, searched or created
  // (8 bytes when decoded as text). This bounds a render to about 2 s of one core
  // whatever the template; the real templates render a 6 MB conversation (1.1M tokens)
  // in under 40% of it and 32 MB of max_alloc_bytes.
  uint64_t max_steps = 10'000'000;
  // Statements, expressions and macro calls nested while evaluating, which is what the
  // stack holds (the real templates nest under 30; 500 take under 3 MiB of stack even in
  // a sanitizer build).
  int max_eval_depth = 500;
};

// What transformers passes to a chat template. `documents` is always none.
struct ChatTemplateInputs {
  JsonValue messages = JsonValue::make_array();
  JsonValue tools;  // null: `tools` is defined and none
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;  // absent: undefined in the template
  std::optional<std::string> eos_token;
  JsonValue::Object extra_variables;     // e.g. {"enable_thinking": false}
  // The time strftime_now() formats (local time); absent: the current local time.
  std::optional<std::tm> now;
};

namespace jinja {
struct Program;
}

class GgufFile;

// What a GGUF says about chat rendering: `tokenizer.chat_template` and the BOS/EOS token
// strings (tokenizer.ggml.bos_token_id / eos_token_id looked up in tokenizer.ggml.tokens;
// absent when the id is not set or out of range, as transformers passes only tokens
// that are set).
struct GgufChatTemplate {
  std::string source;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

// not_found (naming the file) when the model has no chat template; the daemon then needs
// one assigned by the admin.
[[nodiscard]] Result<GgufChatTemplate> chat_template_from_gguf(const GgufFile& file);

class ChatTemplate {
 public:
  // Parses `source` (UTF-8). Syntax errors return invalid_argument naming the line.
  [[nodiscard]] static Result<ChatTemplate> parse(std::string_view source, ChatTemplateLimits limits = {});

  // Renders with the given inputs. On failure returns invalid_argument whose detail is
  // exactly the template's message when it called raise_exception(msg), otherwise a
  // Python-style "UndefinedError: ..." / "TypeError: ..." naming the line;
  // resource_exhausted when a limit was hit.
  [[nodiscard]] Result<std::string> render(const ChatTemplateInputs& inputs) const;

  // Renders with arbitrary top-level variables (an object); no globals beyond the builtins.
  [[nodiscard]] Result<std::string> render_with(const JsonValue::Object& variables,
                                                std::optional<std::tm> now = std::nullopt) const;

 private:
  ChatTemplate(std::shared_ptr<const jinja::Program> program, ChatTemplateLimits limits)
      : program_(std::move(program)), limits_(limits) {}

  std::shared_ptr<const jinja::Program> program_;
  ChatTemplateLimits limits_;
};

}  // namespace sn::engine
