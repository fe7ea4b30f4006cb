// `supernode tokenize` and `supernode perplexity`.
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "supernode/scheduler/kv_tiers.h"

namespace sn::cli {

int cmd_tokenize(int argc, char** argv) {
  Args args("tokenize", "-m MODEL (-f FILE | -p TEXT) [options]",
            "Prints the token ids of the text, space-separated, on one line. BOS is added as the\n"
            "model's metadata says. Works on vocabulary-only GGUF files (no tensors).",
            {{{"-m", "--model"}, "FILE", "GGUF model or vocabulary", ""},
             {{"-f", "--file"}, "FILE", "text file to tokenize", ""},
             {{"-p", "--prompt"}, "TEXT", "text to tokenize", ""},
             {{"--no-bos"}, "", "do not add BOS/EOS even when the metadata asks for them", ""},
             {{"--no-parse-special"}, "", "treat special-token text as plain text", ""}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-m")) return usage_error(Status::invalid_argument("tokenize", "-m MODEL is required"));
  if (args.has("-f") == args.has("-p")) {
    return usage_error(Status::invalid_argument("tokenize", "give exactly one of -f FILE and -p TEXT"));
  }
  std::string text = args.str("-p", "");
  if (args.has("-f")) {
    Result<std::string> t = read_text_file(*args.value("-f"));
    if (!t.ok()) return runtime_error(t.status());
    text = *t;
  }
  Result<engine::GgufFile> f = engine::GgufFile::open(*args.value("-m"));
  if (!f.ok()) return runtime_error(f.status());
  Result<std::unique_ptr<engine::Tokenizer>> tok = engine::Tokenizer::from_gguf(*f);
  if (!tok.ok()) return runtime_error(tok.status());
  std::vector<int32_t> ids =
      (*tok)->encode(text, {.add_special = !args.has("--no-bos"), .parse_special = !args.has("--no-parse-special")});
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  return 0;
}

int cmd_perplexity(int argc, char** argv) {
  Args args("perplexity", "-m MODEL -f FILE [-c CTX] [options]",
            "Perplexity of the model over FILE by llama.cpp's method: the whole text is tokenized\n"
            "with BOS and cut into chunks of CTX tokens; each chunk starts with BOS and only the\n"
            "second half of each chunk is scored (every scored token has at least CTX/2 tokens of\n"
            "context). Prints the running estimate per chunk; the last line is `perplexity: X`.",
            {{{"-m", "--model"}, "FILE", "GGUF model", ""},
             {{"-f", "--file"}, "FILE", "text to score", ""},
             {{"-c", "--ctx-size"}, "N", "chunk size in tokens", "512"},
             {{"-b", "--batch-size"}, "N", "tokens per forward call", "512"},
             {{"--chunks"}, "N", "score at most N chunks (0: all)", "0"},
             {{"--kv-split"}, "", "compute each chunk's first half, then its second half attending to the first "
                                  "half's cached KV (as a prefix-cache hit does); equal to the default by batch "
                                  "invariance", ""},
             {{"--kv-int8"}, "", "as --kv-split, with the first half's full KV blocks passed through the int8 "
                                 "encoding of the lower cache tiers: the accuracy cost of --kv-int8 tiers", ""},
             {{"-t", "--threads"}, "N", "compute threads", "one per physical core"}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-m") || !args.has("-f")) {
    return usage_error(Status::invalid_argument("perplexity", "-m MODEL and -f FILE are required"));
  }
  Result<long long> ctx = args.integer("-c", 512, 8, 1 << 20);
  Result<long long> batch = args.integer("-b", 512, 1, 1 << 20);
  Result<long long> max_chunks = args.integer("--chunks", 0, 0, 1 << 30);
  Result<long long> threads = args.integer("-t", 0, 0, 1024);
  for (const Status* s : {&ctx.status(), &batch.status(), &max_chunks.status(), &threads.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  Result<std::string> text = read_text_file(*args.value("-f"));
  if (!text.ok()) return runtime_error(text.status());
  Result<Runtime> rt = load_runtime(*args.value("-m"), static_cast<int>(*threads));
  if (!rt.ok()) return runtime_error(rt.status());
  const engine::Model& model = *rt->model;
  const engine::Tokenizer& tok = model.tokenizer();
  const int32_t n_ctx = static_cast<int32_t>(*ctx);
  std::vector<int32_t> tokens = tok.encode(*text, {.add_special = true, .parse_special = false});
  // As llama-perplexity counts them: whole chunks of the text without its last token.
  long long n_chunks = (static_cast<long long>(tokens.size()) - 1) / n_ctx;
  if (*max_chunks > 0) n_chunks = std::min(n_chunks, *max_chunks);
  if (n_chunks == 0) {
    return runtime_error(Status::invalid_argument(
        "perplexity", "the text has " + std::to_string(tokens.size()) + " tokens, not more than one chunk of " +
                          std::to_string(n_ctx) + " (use a smaller -c)"));
  }
  std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %d\n", tokens.size(), n_chunks, n_ctx);
  engine::Session session(model, *rt->backend, n_ctx);
  const bool int8 = args.has("--kv-int8");
  const bool split = int8 || args.has("--kv-split");
  const int32_t n_vocab = model.config().n_vocab;
  const int32_t first = n_ctx / 2;
  double nll = 0;
  long long count = 0;
  std::vector<float> logits;
  for (long long c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (tok.bos() >= 0) chunk[0] = tok.bos();
    session.reset();
    if (split) {
      // The first half, its full KV blocks optionally through the int8 encoding, then the
      // second half on top of it.
      const std::span<const int32_t> all(chunk);
      std::vector<float> second;
      if (Status s = session.eval(all.first(first), &logits, true, static_cast<int32_t>(*batch)); !s.is_ok()) {
        return runtime_error(s);
      }
      if (int8) {
        session.transform_full_blocks([&](std::span<std::byte> block) {
          std::vector<std::byte> q(scheduler::kv_int8_bytes(block.size(), model.config().head_dim));
          scheduler::kv_int8_encode(block, model.config().head_dim, q);
          scheduler::kv_int8_decode(q, model.config().head_dim, block);
        });
      }
      if (Status s = session.eval(all.subspan(first), &second, true, static_cast<int32_t>(*batch)); !s.is_ok()) {
        return runtime_error(s);
      }
      logits.insert(logits.end(), second.begin(), second.end());
    } else if (Status s = session.eval(chunk, &logits, /*all_logits=*/true, static_cast<int32_t>(*batch)); !s.is_ok()) {
      return runtime_error(s);
    }
    for (int32_t j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + static_cast<size_t>(j) * n_vocab;
      float mx = row[0];
      for (int32_t i = 1; i < n_vocab; ++i) mx = std::max(mx, row[i]);
      double sum = 0;
      for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
      const int32_t target = tokens[c * n_ctx + j + 1];
      nll += -(static_cast<double>(row[target]) - mx - std::log(sum));
      ++count;
    }
    std::printf("[%lld]%.4f\n", c + 1, std::exp(nll / count));
    std::fflush(stdout);
  }
  std::printf("perplexity: %.4f\n", std::exp(nll / count));
  return 0;
}

}  // namespace sn::cli
