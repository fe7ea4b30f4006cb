// `supernode run` (text generation) and `supernode logits` (top-k logits per position).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "supernode/engine/sampling.h"

namespace sn::cli {
namespace {

const OptionSpec kModel{{"-m", "--model"}, "FILE", "GGUF model to load", ""};
const OptionSpec kThreads{{"-t", "--threads"}, "N", "compute threads", "one per physical core"};

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  Args args("run", "-m MODEL -p PROMPT [options]",
            "Generates text from PROMPT and prints only the generated text on stdout (timings on stderr).\n"
            "The prompt is tokenized with BOS as the model's metadata says.",
            {kModel,
             {{"-p", "--prompt"}, "TEXT", "the prompt", ""},
             {{"-f", "--file"}, "FILE", "read the prompt from FILE", ""},
             {{"-n", "--n-predict"}, "N", "tokens to generate (-1: until end of text or context)", "128"},
             {{"-c", "--ctx-size"}, "N", "context size in tokens", "2048 or the model's, if smaller"},
             {{"--temp"}, "T", "temperature; 0 is greedy", "0.8"},
             {{"--top-k"}, "N", "top-k sampling (0: off)", "40"},
             {{"--top-p"}, "P", "top-p sampling (1: off)", "0.95"},
             {{"--min-p"}, "P", "min-p sampling (0: off)", "0.05"},
             {{"--repeat-penalty"}, "X", "repetition penalty (1: off)", "1.0"},
             {{"--repeat-last-n"}, "N", "window the penalties look at", "64"},
             {{"--frequency-penalty"}, "X", "OpenAI-style frequency penalty", "0"},
             {{"--presence-penalty"}, "X", "OpenAI-style presence penalty", "0"},
             {{"-s", "--seed"}, "S", "random seed", "random"},
             {{"--stop"}, "TEXT", "stop when TEXT is generated (repeatable)", ""},
             {{"--ignore-eos"}, "", "keep generating past end-of-text tokens", ""},
             kThreads});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-m")) return usage_error(Status::invalid_argument("run", "-m MODEL is required"));
  std::string prompt = args.str("-p", "");
  if (args.has("-f")) {
    Result<std::string> text = read_text_file(*args.value("-f"));
    if (!text.ok()) return runtime_error(text.status());
    prompt = *text;
  }
  Result<long long> n_predict = args.integer("-n", 128, -1, 1 << 24);
  Result<long long> threads = args.integer("-t", 0, 0, 1024);
  Result<long long> ctx = args.integer("-c", 0, 0, 1 << 24);
  engine::SamplingParams sp;
  Result<double> temp = args.number("--temp", 0.8, 0, 100);
  Result<long long> top_k = args.integer("--top-k", 40, 0, 1 << 24);
  Result<double> top_p = args.number("--top-p", 0.95, 0, 1);
  Result<double> min_p = args.number("--min-p", 0.05, 0, 1);
  Result<double> rep = args.number("--repeat-penalty", 1.0, 0, 10);
  Result<long long> rep_n = args.integer("--repeat-last-n", 64, -1, 1 << 24);
  Result<double> freq = args.number("--frequency-penalty", 0, -2, 2);
  Result<double> pres = args.number("--presence-penalty", 0, -2, 2);
  Result<long long> seed = args.integer("-s", 0xFFFFFFFFll, 0, (1ll << 62));
  for (const Status* s : {&n_predict.status(), &threads.status(), &ctx.status(), &temp.status(), &top_k.status(),
                          &top_p.status(), &min_p.status(), &rep.status(), &rep_n.status(), &freq.status(),
                          &pres.status(), &seed.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  sp.temperature = static_cast<float>(*temp);
  sp.top_k = static_cast<int32_t>(*top_k);
  sp.top_p = static_cast<float>(*top_p);
  sp.min_p = static_cast<float>(*min_p);
  sp.repeat_penalty = static_cast<float>(*rep);
  sp.repeat_last_n = static_cast<int32_t>(*rep_n);
  sp.frequency_penalty = static_cast<float>(*freq);
  sp.presence_penalty = static_cast<float>(*pres);
  sp.seed = static_cast<uint64_t>(*seed);
  if (Status s = sp.validate(); !s.is_ok()) return usage_error(s);

  Result<Runtime> rt = load_runtime(*args.value("-m"), static_cast<int>(*threads));
  if (!rt.ok()) return runtime_error(rt.status());
  const engine::Model& model = *rt->model;
  const engine::Tokenizer& tok = model.tokenizer();
  int32_t n_ctx = *ctx > 0 ? static_cast<int32_t>(*ctx) : std::min<int32_t>(2048, model.config().n_ctx_train);

  std::vector<int32_t> tokens = tok.encode(prompt, {.add_special = true, .parse_special = true});
  if (tokens.empty()) return usage_error(Status::invalid_argument("run", "the prompt is empty and the model adds no BOS"));
  if (static_cast<int32_t>(tokens.size()) >= n_ctx) {
    return runtime_error(Status::invalid_argument("run", "the prompt has " + std::to_string(tokens.size()) +
                                                             " tokens, more than the context size " +
                                                             std::to_string(n_ctx) + " allows"));
  }
  engine::Session session(model, *rt->backend, n_ctx);
  engine::Sampler sampler(sp);
  engine::StopMatcher stop(args.all("--stop"));
  engine::IncrementalDetokenizer detok(tok);
  const bool ignore_eos = args.has("--ignore-eos");

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<float> logits;
  if (Status s = session.eval(tokens, &logits); !s.is_ok()) return runtime_error(s);
  const auto t1 = Clock::now();
  std::vector<int32_t> history = tokens;
  int generated = 0;
  const long long limit = *n_predict < 0 ? (1ll << 40) : *n_predict;
  while (generated < limit && session.n_past() < n_ctx) {
    const int32_t next = sampler.sample(logits, history);
    if (!ignore_eos && tok.is_eog(next)) break;
    history.push_back(next);
    ++generated;
    const std::string out = stop.push(detok.push(next));
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    if (stop.stopped() || generated >= limit || session.n_past() >= n_ctx) break;
    const int32_t one[1] = {next};
    if (Status s = session.eval(one, &logits); !s.is_ok()) return runtime_error(s);
  }
  if (!stop.stopped()) {
    const std::string rest = stop.push(detok.flush());
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    if (!stop.stopped()) {
      const std::string held = stop.flush();
      std::fwrite(held.data(), 1, held.size(), stdout);
    }
  }
  std::printf("\n");
  const auto t2 = Clock::now();
  const double pp_s = std::chrono::duration<double>(t1 - t0).count();
  const double tg_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "\nsupernode: prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s); "
               "%d threads, %s kernels, seed %llu\n",
               tokens.size(), pp_s, tokens.size() / std::max(pp_s, 1e-9), generated, tg_s,
               generated / std::max(tg_s, 1e-9), rt->pool->size(), hal::isa_name(rt->backend->isa()),
               static_cast<unsigned long long>(sampler.seed()));
  return 0;
}

int cmd_logits(int argc, char** argv) {
  Args args("logits", "-m MODEL -p PROMPT [-k 5] [--greedy N]",
            "Prints one JSON array per prompt position, one line each, holding the top-k [id, logit]\n"
            "pairs (the prompt_top5 format of llama.cpp's reference files). With --greedy N, then\n"
            "generates N tokens greedily and prints the top-k before each, one line each, after a line\n"
            "with the generated ids.",
            {kModel,
             {{"-p", "--prompt"}, "TEXT", "the prompt (tokenized with BOS as the metadata says)", ""},
             {{"-k", "--top"}, "K", "pairs per position", "5"},
             {{"--greedy"}, "N", "greedy steps after the prompt", "0"},
             kThreads});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-m") || !args.has("-p")) return usage_error(Status::invalid_argument("logits", "-m MODEL and -p PROMPT are required"));
  Result<long long> k = args.integer("-k", 5, 1, 1000);
  Result<long long> greedy = args.integer("--greedy", 0, 0, 1 << 20);
  Result<long long> threads = args.integer("-t", 0, 0, 1024);
  for (const Status* s : {&k.status(), &greedy.status(), &threads.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  Result<Runtime> rt = load_runtime(*args.value("-m"), static_cast<int>(*threads));
  if (!rt.ok()) return runtime_error(rt.status());
  const engine::Model& model = *rt->model;
  std::vector<int32_t> tokens = model.tokenizer().encode(*args.value("-p"), {.add_special = true, .parse_special = true});
  const int32_t n_vocab = model.config().n_vocab;
  engine::Session session(model, *rt->backend, static_cast<int32_t>(tokens.size() + *greedy + 1));
  std::vector<float> logits;
  if (Status s = session.eval(tokens, &logits, /*all_logits=*/true); !s.is_ok()) return runtime_error(s);
  auto print_top = [&](const float* row) {
    std::vector<int32_t> idx(n_vocab);
    for (int32_t i = 0; i < n_vocab; ++i) idx[i] = i;
    const size_t kk = std::min<size_t>(*k, n_vocab);
    std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    std::string line = "[";
    for (size_t i = 0; i < kk; ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s[%d,%.6g]", i ? "," : "", idx[i], row[idx[i]]);
      line += buf;
    }
    std::printf("%s]\n", line.c_str());
  };
  for (size_t p = 0; p < tokens.size(); ++p) print_top(logits.data() + p * n_vocab);
  if (*greedy > 0) {
    std::vector<float> last(logits.end() - n_vocab, logits.end());
    std::vector<int32_t> ids;
    std::vector<std::vector<float>> rows;
    for (long long i = 0; i < *greedy; ++i) {
      rows.push_back(last);
      const int32_t next = engine::argmax(last);
      ids.push_back(next);
      const int32_t one[1] = {next};
      if (Status s = session.eval(one, &last); !s.is_ok()) return runtime_error(s);
    }
    std::string line = "{\"greedy\":[";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
    line += "],\"text\":\"" + json_escape(model.tokenizer().decode(ids)) + "\"}";
    std::printf("%s\n", line.c_str());
    for (const auto& r : rows) print_top(r.data());
  }
  return 0;
}

}  // namespace sn::cli
