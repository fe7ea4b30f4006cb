// `supernode render-template TEMPLATE.jinja CASE.json`: renders a chat template the way
// transformers' apply_chat_template(..., tokenize=False) does and prints the result
// byte-exact (nothing added). CASE.json holds `messages`, `add_generation_prompt`,
// `tools`, `extra_variables` (as ../shared/reference/chat-templates/cases.json) and
// optionally `bos_token` / `eos_token`.
#include <cstdio>
#include <ctime>
#include <string>

#include "commands.h"
#include "supernode/engine/chat_template.h"

namespace sn::cli {
namespace {

using engine::JsonValue;

Result<engine::ChatTemplateInputs> read_case(const std::string& path, const std::string& text) {
  Result<JsonValue> j = engine::json_parse(text);
  if (!j.ok()) return j.status().with_context(path);
  if (j->kind != JsonValue::Kind::kObject) return Status::invalid_argument(path, "expected a JSON object");
  engine::ChatTemplateInputs in;
  if (const JsonValue* m = j->find("messages")) {
    if (m->kind != JsonValue::Kind::kArray) return Status::invalid_argument(path, "'messages' must be an array");
    in.messages = *m;
  } else {
    return Status::invalid_argument(path, "missing 'messages'");
  }
  if (const JsonValue* t = j->find("tools")) in.tools = *t;
  if (const JsonValue* g = j->find("add_generation_prompt")) {
    if (g->kind != JsonValue::Kind::kBool) return Status::invalid_argument(path, "'add_generation_prompt' must be true or false");
    in.add_generation_prompt = g->b;
  }
  for (const char* key : {"bos_token", "eos_token"}) {
    if (const JsonValue* t = j->find(key); t && !t->is_null()) {
      if (t->kind != JsonValue::Kind::kString) return Status::invalid_argument(path, std::string("'") + key + "' must be a string");
      (key[0] == 'b' ? in.bos_token : in.eos_token) = t->s;
    }
  }
  if (const JsonValue* x = j->find("extra_variables"); x && !x->is_null()) {
    if (x->kind != JsonValue::Kind::kObject) return Status::invalid_argument(path, "'extra_variables' must be an object");
    in.extra_variables = x->object;
  }
  return in;
}

}  // namespace

int cmd_render_template(int argc, char** argv) {
  Args args("render-template", "TEMPLATE.jinja CASE.json [--now 'YYYY-MM-DD HH:MM:SS']",
            "Renders a chat template with the conversation in CASE.json (messages, add_generation_prompt, tools,\n"
            "extra_variables, optional bos_token/eos_token) exactly as transformers' apply_chat_template does,\n"
            "and prints the result to stdout with nothing added. A template error goes to stderr (exit 1).",
            {{{"--now"}, "TIME", "the local time strftime_now() formats", "the current time"}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 2) {
    return usage_error(Status::invalid_argument("render-template", "give exactly TEMPLATE.jinja and CASE.json"));
  }
  const std::string& tpl_path = args.positional()[0];
  const std::string& case_path = args.positional()[1];
  std::optional<std::tm> now;
  if (std::optional<std::string> t = args.value("--now")) {
    std::tm tm{};
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    const int n = std::sscanf(t->c_str(), "%d-%d-%d%*[ T]%d:%d:%d", &y, &mo, &d, &h, &mi, &s);
    if (n != 3 && n != 6) return usage_error(Status::invalid_argument("--now", "expected 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'"));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    if (std::mktime(&tm) == static_cast<std::time_t>(-1)) {
      return usage_error(Status::invalid_argument("--now", "not a valid time: " + *t));
    }
    now = tm;
  }
  Result<std::string> src = read_text_file(tpl_path);
  if (!src.ok()) return runtime_error(src.status());
  Result<std::string> case_text = read_text_file(case_path);
  if (!case_text.ok()) return runtime_error(case_text.status());
  Result<engine::ChatTemplateInputs> in = read_case(case_path, *case_text);
  if (!in.ok()) return runtime_error(in.status());
  in->now = now;
  Result<engine::ChatTemplate> tpl = engine::ChatTemplate::parse(*src);
  if (!tpl.ok()) return runtime_error(tpl.status().with_context(tpl_path));
  Result<std::string> out = tpl->render(*in);
  if (!out.ok()) return runtime_error(out.status().with_context(tpl_path));
  std::fwrite(out->data(), 1, out->size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace sn::cli
