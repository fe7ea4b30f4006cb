// ChatTemplate (see chat_template.h): the face of the Jinja interpreter in src/jinja, plus
// JsonValue and its parser. Interpreter errors (internal exceptions) are turned into
// Status here and never leave this file.
#include "supernode/engine/chat_template.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "jinja/ast.h"
#include "supernode/engine/gguf.h"
#include "jinja/interpreter.h"

namespace sn::engine {

JsonValue JsonValue::boolean(bool v) {
  JsonValue j;
  j.kind = Kind::kBool;
  j.b = v;
  return j;
}
JsonValue JsonValue::integer(int64_t v) {
  JsonValue j;
  j.kind = Kind::kInt;
  j.i = v;
  return j;
}
JsonValue JsonValue::number(double v) {
  JsonValue j;
  j.kind = Kind::kFloat;
  j.f = v;
  return j;
}
JsonValue JsonValue::string(std::string v) {
  JsonValue j;
  j.kind = Kind::kString;
  j.s = std::move(v);
  return j;
}
JsonValue JsonValue::make_array(Array v) {
  JsonValue j;
  j.kind = Kind::kArray;
  j.array = std::move(v);
  return j;
}
JsonValue JsonValue::make_object(Object v) {
  JsonValue j;
  j.kind = Kind::kObject;
  j.object = std::move(v);
  return j;
}

const JsonValue* JsonValue::find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& kv : object) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

namespace {

class JsonParser {
 public:
  explicit JsonParser(std::string_view t) : t_(t) {}

  Result<JsonValue> run() {
    JsonValue v;
    if (Status s = value(v, 0); !s.is_ok()) return s;
    ws();
    if (p_ != t_.size()) return err("unexpected trailing characters");
    return v;
  }

 private:
  Status err(const std::string& what) const {
    return Status::invalid_argument("json", what + " at byte " + std::to_string(p_));
  }
  void ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }
  bool lit(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  Status value(JsonValue& out, int depth) {
    if (depth > 512) return err("nesting deeper than 512 levels");
    ws();
    if (p_ >= t_.size()) return err("unexpected end of input");
    const char c = t_[p_];
    if (c == '{') {
      ++p_;
      out = JsonValue::make_object();
      ws();
      if (p_ < t_.size() && t_[p_] == '}') {
        ++p_;
        return Status::ok();
      }
      while (true) {
        ws();
        std::string key;
        if (p_ >= t_.size() || t_[p_] != '"') return err("expected a string key");
        SN_RETURN_IF_ERROR(string(key));
        ws();
        if (p_ >= t_.size() || t_[p_] != ':') return err("expected ':'");
        ++p_;
        JsonValue v;
        SN_RETURN_IF_ERROR(value(v, depth + 1));
        bool replaced = false;
        for (auto& kv : out.object) {
          if (kv.first == key) {
            kv.second = std::move(v);  // Python keeps the last value at the first position.
            replaced = true;
            break;
          }
        }
        if (!replaced) out.object.emplace_back(std::move(key), std::move(v));
        ws();
        if (p_ < t_.size() && t_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < t_.size() && t_[p_] == '}') {
          ++p_;
          return Status::ok();
        }
        return err("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++p_;
      out = JsonValue::make_array();
      ws();
      if (p_ < t_.size() && t_[p_] == ']') {
        ++p_;
        return Status::ok();
      }
      while (true) {
        JsonValue v;
        SN_RETURN_IF_ERROR(value(v, depth + 1));
        out.array.push_back(std::move(v));
        ws();
        if (p_ < t_.size() && t_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < t_.size() && t_[p_] == ']') {
          ++p_;
          return Status::ok();
        }
        return err("expected ',' or ']'");
      }
    }
    if (c == '"') {
      out = JsonValue::string("");
      return string(out.s);
    }
    if (lit("true")) {
      out = JsonValue::boolean(true);
      return Status::ok();
    }
    if (lit("false")) {
      out = JsonValue::boolean(false);
      return Status::ok();
    }
    if (lit("null")) {
      out = JsonValue::null();
      return Status::ok();
    }
    return number(out);
  }

  Status number(JsonValue& out) {
    const size_t start = p_;
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    auto digits = [&]() {
      const size_t s = p_;
      while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
      return p_ - s;
    };
    const size_t int_start = p_;
    if (digits() == 0) return err("invalid value");
    if (t_[int_start] == '0' && p_ - int_start > 1) return err("leading zeros in number");
    bool is_float = false;
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      if (digits() == 0) return err("digits expected after '.'");
      is_float = true;
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (digits() == 0) return err("digits expected in exponent");
      is_float = true;
    }
    const std::string text(t_.substr(start, p_ - start));
    errno = 0;
    if (!is_float) {
      const long long v = std::strtoll(text.c_str(), nullptr, 10);
      if (errno != ERANGE) {
        out = JsonValue::integer(v);
        return Status::ok();
      }
    }
    out = JsonValue::number(std::strtod(text.c_str(), nullptr));
    return Status::ok();
  }

  Status hex4(uint32_t& v) {
    if (p_ + 4 > t_.size()) return err("truncated \\u escape");
    v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = t_[p_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else return err("bad \\u escape");
    }
    return Status::ok();
  }

  Status string(std::string& out) {
    ++p_;  // opening quote
    while (true) {
      if (p_ >= t_.size()) return err("unterminated string");
      const char c = t_[p_++];
      if (c == '"') return Status::ok();
      if (static_cast<unsigned char>(c) < 0x20) return err("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= t_.size()) return err("unterminated string");
      const char e = t_[p_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          SN_RETURN_IF_ERROR(hex4(cp));
          if (cp >= 0xd800 && cp < 0xdc00 && t_.substr(p_, 2) == "\\u") {
            const size_t save = p_;
            p_ += 2;
            uint32_t lo = 0;
            SN_RETURN_IF_ERROR(hex4(lo));
            if (lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else {
              p_ = save;
            }
          }
          jinja::utf8_append(out, cp);
          break;
        }
        default: return err(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  std::string_view t_;
  size_t p_ = 0;
};

jinja::Value to_value(const JsonValue& j, int depth = 0) {
  using jinja::Value;
  if (depth > static_cast<int>(jinja::kMaxValueDepth)) {
    throw jinja::JinjaError(jinja::JinjaError::Kind::kLimit, "input nested deeper than " +
                                                                 std::to_string(jinja::kMaxValueDepth) + " levels");
  }
  switch (j.kind) {
    case JsonValue::Kind::kNull: return Value::none();
    case JsonValue::Kind::kBool: return Value::boolean(j.b);
    case JsonValue::Kind::kInt: return Value::integer(j.i);
    case JsonValue::Kind::kFloat: return Value::number(j.f);
    case JsonValue::Kind::kString: return Value::string(j.s);
    case JsonValue::Kind::kArray: {
      jinja::List items;
      items.reserve(j.array.size());
      for (const JsonValue& x : j.array) items.push_back(to_value(x, depth + 1));
      return Value::make_list(std::move(items));
    }
    case JsonValue::Kind::kObject: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.object.size());
      for (const auto& kv : j.object) items.emplace_back(Value::string(kv.first), to_value(kv.second, depth + 1));
      return Value::make_dict(std::move(items));
    }
  }
  return Value::none();
}

Status to_status(const jinja::JinjaError& e) {
  if (e.kind == jinja::JinjaError::Kind::kLimit) return Status::resource_exhausted("chat template", e.what());
  return Status::invalid_argument("chat template", e.what());
}

}  // namespace

Result<JsonValue> json_parse(std::string_view text) { return JsonParser(text).run(); }

Result<ChatTemplate> ChatTemplate::parse(std::string_view source, ChatTemplateLimits limits) {
  if (source.size() > limits.max_source_bytes) {
    return Status::resource_exhausted("chat template", "source is " + std::to_string(source.size()) +
                                                           " bytes, more than the limit of " +
                                                           std::to_string(limits.max_source_bytes));
  }
  try {
    std::shared_ptr<const jinja::Program> prog = jinja::parse_program(jinja::lex(source));
    jinja::check_program(*prog);
    return ChatTemplate(std::move(prog), limits);
  } catch (const jinja::JinjaError& e) {
    return to_status(e);
  } catch (const std::exception& e) {
    return Status::internal("chat template", e.what());
  }
}

Result<std::string> ChatTemplate::render_with(const JsonValue::Object& variables, std::optional<std::tm> now) const {
  std::tm t{};
  if (now) {
    t = *now;
  } else {
    const std::time_t clock = std::time(nullptr);
    localtime_r(&clock, &t);
  }
  jinja::RenderLimits lim;
  lim.max_output_bytes = limits_.max_output_bytes;
  lim.max_loop_iterations = limits_.max_loop_iterations;
  lim.max_call_depth = limits_.max_call_depth;
  lim.max_value_bytes = limits_.max_value_bytes;
  lim.max_alloc_bytes = limits_.max_alloc_bytes;
  lim.max_steps = limits_.max_steps;
  lim.max_eval_depth = limits_.max_eval_depth;
  try {
    // The inputs are the caller's, converted before the budget is in force.
    std::vector<std::pair<std::string, jinja::Value>> vars;
    vars.reserve(variables.size());
    for (const auto& kv : variables) vars.emplace_back(kv.first, to_value(kv.second));
    return jinja::render_program(*program_, vars, t, lim);
  } catch (const jinja::JinjaError& e) {
    return to_status(e);
  } catch (const std::exception& e) {
    return Status::internal("chat template", e.what());
  }
}

Result<std::string> ChatTemplate::render(const ChatTemplateInputs& in) const {
  JsonValue::Object vars;
  vars.emplace_back("messages", in.messages);
  vars.emplace_back("tools", in.tools);
  vars.emplace_back("documents", JsonValue::null());
  vars.emplace_back("add_generation_prompt", JsonValue::boolean(in.add_generation_prompt));
  if (in.bos_token) vars.emplace_back("bos_token", JsonValue::string(*in.bos_token));
  if (in.eos_token) vars.emplace_back("eos_token", JsonValue::string(*in.eos_token));
  for (const auto& kv : in.extra_variables) {
    bool replaced = false;
    for (auto& v : vars) {
      if (v.first == kv.first) {
        v.second = kv.second;
        replaced = true;
      }
    }
    if (!replaced) vars.push_back(kv);
  }
  return render_with(vars, in.now);
}

Result<GgufChatTemplate> chat_template_from_gguf(const GgufFile& file) {
  Result<std::string_view> src = file.get_string_or("tokenizer.chat_template", "");
  if (!src.ok()) return src.status();
  if (src->empty()) {
    return Status::not_found(file.path(), "the model has no tokenizer.chat_template; assign a chat template to serve chat requests");
  }
  GgufChatTemplate out;
  out.source = std::string(*src);
  Result<const GgufArray*> tokens = file.get_array("tokenizer.ggml.tokens");
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!tokens.ok() || (*tokens)->type() != GgufType::kString) return std::nullopt;
    Result<int64_t> id = file.get_int_or(key, -1);
    if (!id.ok() || *id < 0 || static_cast<uint64_t>(*id) >= (*tokens)->size()) return std::nullopt;
    return std::string((*tokens)->str(static_cast<size_t>(*id)));
  };
  out.bos_token = token("tokenizer.ggml.bos_token_id");
  out.eos_token = token("tokenizer.ggml.eos_token_id");
  return out;
}

}  // namespace sn::engine
