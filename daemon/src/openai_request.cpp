// The OpenAI request mapping (openai_request.h). Validation names the parameter at fault,
// as OpenAI's `param`; ranges follow OpenAI's documented ones.
#include "openai_request.h"

#include <cstdio>
#include <type_traits>

namespace sn::daemon {
namespace http = boost::beast::http;

std::string error_body(const ApiError& e) noexcept {
  try {
    json j = {{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    // Only allocation can fail here; a fixed body still answers the client.
    return R"({"error":{"message":"internal error","type":"server_error","param":null,"code":null}})";
  }
}

ApiError from_status(const Status& s) {
  ApiError e;
  e.message = s.message();
  switch (s.code()) {
    case Status::Code::kInvalidArgument: e.status = http::status::bad_request; break;
    case Status::Code::kNotFound: e.status = http::status::not_found; e.code = "not_found"; break;
    case Status::Code::kResourceExhausted:
      e.status = http::status::too_many_requests;
      e.type = "rate_limit_error";
      e.code = "server_busy";
      break;
    default: e.status = http::status::internal_server_error; e.type = "server_error"; break;
  }
  return e;
}

bool json_depth_within(std::string_view body, int max_depth) noexcept {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

namespace {

ApiError bad(std::string message, std::string param = {}) {
  return {http::status::bad_request, std::move(message), "invalid_request_error", std::move(param), {}};
}

template <class T>
bool get_number(const json& body, const char* name, T& out, double lo, double hi, ApiError& err) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number()) {
    err = bad(std::string("'") + name + "' must be a number", name);
    return false;
  }
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    err = bad(std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump(), name);
    return false;
  }
  if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      err = bad(std::string("'") + name + "' must be an integer", name);
      return false;
    }
    out = static_cast<T>(it->get<int64_t>());
  } else {
    out = static_cast<T>(v);
  }
  return true;
}

bool get_bool(const json& body, const char* name, bool& out, ApiError& err) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    err = bad(std::string("'") + name + "' must be a boolean", name);
    return false;
  }
  out = it->get<bool>();
  return true;
}

// Completions: `logprobs` is null or an integer 0-20 (top alternatives; the sampled
// token's logprob is always given). Chat: `logprobs` a boolean, `top_logprobs` 0-20.
bool parse_logprobs(const json& body, OpenAiRequest& r, ApiError& err) {
  auto lp = body.find("logprobs");
  const bool given = lp != body.end() && !lp->is_null();
  if (!r.chat) {
    if (auto echo = body.find("echo"); echo != body.end() && echo->is_boolean() && echo->get<bool>()) {
      err = bad("'echo' is not supported", "echo");
      return false;
    }
    if (!given) return true;
    if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > kMaxTopLogprobs) {
      err = bad("'logprobs' must be an integer between 0 and 20", "logprobs");
      return false;
    }
    r.logprobs = static_cast<int32_t>(lp->get<int64_t>());
    return true;
  }
  if (given && !lp->is_boolean()) {
    err = bad("'logprobs' must be a boolean", "logprobs");
    return false;
  }
  const bool on = given && lp->get<bool>();
  int64_t top = 0;
  if (!get_number(body, "top_logprobs", top, 0, kMaxTopLogprobs, err)) return false;
  if (top > 0 && !on) {
    err = bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    return false;
  }
  if (on) r.logprobs = static_cast<int32_t>(top);
  return true;
}

bool parse_prompt(const json& body, OpenAiRequest& r, ApiError& err) {
  auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null()) {
    err = bad("'prompt' is required", "prompt");
    return false;
  }
  if (prompt->is_string()) {
    r.prompt_text = prompt->get<std::string>();
  } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
    for (const json& t : *prompt) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        err = bad("'prompt' token arrays must hold token ids (non-negative integers)", "prompt");
        return false;
      }
      r.prompt_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    r.prompt_text = (*prompt)[0].get<std::string>();
  } else {
    err = bad("'prompt' must be a string, one string in an array, or an array of token ids", "prompt");
    return false;
  }
  return true;
}

// Checks `messages` and puts them in the shape templates expect.
bool parse_messages(const json& body, OpenAiRequest& r, ApiError& err) {
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    err = bad("'messages' must be a non-empty array", "messages");
    return false;
  }
  r.messages = json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      err = bad("'" + where + "' must be an object with a string 'role'", where);
      return false;
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool") {
      err = bad("'" + where + ".role' '" + role + "' is not one of system, developer, user, assistant, tool",
                where + ".role");
      return false;
    }
    json n = m;
    // Content as parts: the text parts joined (images are not supported).
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const json& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string() ||
            part["type"].get<std::string>() != "text" || !part.contains("text") || !part["text"].is_string()) {
          err = bad("'" + where + ".content' parts must be {\"type\": \"text\", \"text\": ...}", where + ".content");
          return false;
        }
        text += part["text"].get<std::string>();
      }
      n["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      err = bad("'" + where + ".content' must be a string, an array of text parts or null", where + ".content");
      return false;
    }
    // Tool-call arguments arrive as JSON text; templates expect the object. Arguments
    // nested deeper than a body may be stay text.
    if (n.contains("tool_calls") && n["tool_calls"].is_array()) {
      for (json& tc : n["tool_calls"]) {
        if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
            tc["function"].contains("arguments") && tc["function"]["arguments"].is_string()) {
          const std::string& text = tc["function"]["arguments"].get_ref<const std::string&>();
          if (!json_depth_within(text, kMaxJsonDepth)) continue;
          json parsed = json::parse(text, nullptr, false);
          if (!parsed.is_discarded()) tc["function"]["arguments"] = std::move(parsed);
        }
      }
    }
    r.messages.push_back(std::move(n));
  }
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) {
      err = bad("'tools' must be an array", "tools");
      return false;
    }
    r.tools = *tools;
  }
  return true;
}

bool parse_stop(const json& body, OpenAiRequest& r, ApiError& err) {
  auto stop = body.find("stop");
  if (stop == body.end() || stop->is_null()) return true;
  const std::string shape = "'stop' must be a string or an array of up to " + std::to_string(kMaxStopStrings) +
                            " strings of at most " + std::to_string(kMaxStopBytes) + " bytes";
  std::vector<const json*> items;
  if (stop->is_string()) {
    items.push_back(&*stop);
  } else if (stop->is_array() && stop->size() <= kMaxStopStrings) {
    for (const json& s : *stop) items.push_back(&s);
  } else {
    err = bad(shape, "stop");
    return false;
  }
  for (const json* s : items) {
    if (!s->is_string() || s->get_ref<const std::string&>().size() > kMaxStopBytes) {
      err = bad(shape, "stop");
      return false;
    }
    if (!s->get_ref<const std::string&>().empty()) r.stop.push_back(s->get<std::string>());
  }
  return true;
}

}  // namespace

bool parse_openai_request(std::string_view text, bool chat, OpenAiRequest& r, ApiError& err) {
  r = OpenAiRequest{};
  r.chat = chat;
  // Before anything recurses over the document (copies, conversions, destruction).
  if (!json_depth_within(text, kMaxJsonDepth)) {
    err = bad("the body nests arrays or objects deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return false;
  }
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    err = bad("the body must be a JSON object");
    return false;
  }
  auto model = body.find("model");
  if (model == body.end() || !model->is_string() || model->get_ref<const std::string&>().empty()) {
    err = bad("'model' is required and must be a non-empty string", "model");
    return false;
  }
  r.model = model->get<std::string>();
  if (chat ? !parse_messages(body, r, err) : !parse_prompt(body, r, err)) return false;
  int64_t n = 1;
  if (!get_number(body, "n", n, 1, kMaxChoices, err)) return false;
  r.n = static_cast<int>(n);
  if (auto user = body.find("user"); user != body.end() && !user->is_null()) {
    if (!user->is_string() || user->get_ref<const std::string&>().size() > kMaxUserBytes) {
      err = bad("'user' must be a string of at most " + std::to_string(kMaxUserBytes) + " bytes", "user");
      return false;
    }
    r.user = user->get<std::string>();
  }
  engine::SamplingParams& sp = r.sampling;
  sp.temperature = 1.0f;  // OpenAI's defaults
  sp.top_p = 1.0f;
  sp.top_k = 0;
  sp.min_p = 0.0f;
  int64_t seed = -1;
  if (chat && !get_number(body, "max_completion_tokens", r.max_tokens, 1, kMaxTokensCeiling, err)) return false;
  if (!get_number(body, "max_tokens", r.max_tokens, 1, kMaxTokensCeiling, err) ||
      !get_number(body, "temperature", sp.temperature, 0, 2, err) || !get_number(body, "top_p", sp.top_p, 0, 1, err) ||
      !get_number(body, "presence_penalty", sp.presence_penalty, -2, 2, err) ||
      !get_number(body, "frequency_penalty", sp.frequency_penalty, -2, 2, err) ||
      !get_number(body, "seed", seed, -9.2e18, 9.2e18, err)) {
    return false;
  }
  if (sp.top_p == 0.0f) sp.top_p = 1e-6f;  // OpenAI accepts 0: the most likely token
  if (seed >= 0) sp.seed = static_cast<uint64_t>(seed);
  r.seeded = seed >= 0;
  if (!parse_stop(body, r, err)) return false;
  // vLLM's extension, for benchmarks: generate max_tokens even past end-of-sequence.
  if (!get_bool(body, "ignore_eos", r.ignore_eos, err) || !get_bool(body, "stream", r.stream, err)) return false;
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
    auto iu = so->find("include_usage");
    r.include_usage = iu != so->end() && iu->is_boolean() && iu->get<bool>();
  }
  if (!parse_logprobs(body, r, err)) return false;
  if (r.logprobs >= 0 && static_cast<int64_t>(r.n) * r.max_tokens * (1 + r.logprobs) > kMaxLogprobEntries) {
    err = bad("logprobs for n x max_tokens tokens with " + std::to_string(r.logprobs) + " alternatives each exceed " +
                  std::to_string(kMaxLogprobEntries) + " entries; ask for fewer tokens, choices or alternatives",
              r.chat ? "top_logprobs" : "logprobs");
    return false;
  }
  return true;
}

namespace {

// nlohmann's JSON as the template engine's value (object member order kept). The depth
// is bounded by json_depth_within at parse time.
engine::JsonValue to_template_value(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return engine::JsonValue::null();
    case json::value_t::boolean: return engine::JsonValue::boolean(j.get<bool>());
    case json::value_t::number_integer: return engine::JsonValue::integer(j.get<int64_t>());
    case json::value_t::number_unsigned:
      return j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? engine::JsonValue::number(j.get<double>())
                                                                    : engine::JsonValue::integer(j.get<int64_t>());
    case json::value_t::number_float: return engine::JsonValue::number(j.get<double>());
    case json::value_t::string: return engine::JsonValue::string(j.get<std::string>());
    case json::value_t::array: {
      engine::JsonValue::Array a;
      a.reserve(j.size());
      for (const json& x : j) a.push_back(to_template_value(x));
      return engine::JsonValue::make_array(std::move(a));
    }
    case json::value_t::object: {
      engine::JsonValue::Object o;
      o.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), to_template_value(it.value()));
      return engine::JsonValue::make_object(std::move(o));
    }
    default: return engine::JsonValue::null();
  }
}

}  // namespace

bool prepare_prompt(const OpenAiRequest& r, const PromptModel& m, std::vector<int32_t>& tokens, ApiError& err) {
  tokens.clear();
  if (r.chat) {
    if (m.chat_template == nullptr) {
      // The reason stays in the server's log: it may name files on the server.
      err = bad("model '" + m.model_id + "' has no usable chat template; use /v1/completions", "model");
      return false;
    }
    engine::ChatTemplateInputs in;
    in.messages = to_template_value(r.messages);
    if (!r.tools.is_null()) in.tools = to_template_value(r.tools);
    in.add_generation_prompt = true;
    in.bos_token = m.bos_text;
    in.eos_token = m.eos_text;
    Result<std::string> text = m.chat_template->render(in);
    if (!text.ok()) {
      err = bad("the chat template refused these messages: " + text.status().message(), "messages");
      return false;
    }
    tokens = m.tokenizer->encode(*text, {.add_special = false, .parse_special = true});
  } else if (r.prompt_text) {
    tokens = m.tokenizer->encode(*r.prompt_text, {.add_special = true, .parse_special = false});
  } else {
    tokens = r.prompt_ids;
  }
  if (tokens.empty()) {
    err = bad("'prompt' is empty", r.chat ? "messages" : "prompt");
    return false;
  }
  return true;
}

}  // namespace sn::daemon
