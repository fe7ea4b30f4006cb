// Tokenizer speed: encoding ~10 KB of English and pathological long runs with the SPM and
// BPE tokenizers of generated models (and of ../shared vocabularies when present, through
// SUPERNODE_SHARED_DIR). Reports bytes/s.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "supernode/engine/gguf.h"
#include "supernode/engine/model_gen.h"
#include "supernode/engine/tokenizer.h"

namespace {

struct Loaded {
  std::unique_ptr<sn::engine::GgufFile> file;
  std::unique_ptr<sn::engine::Tokenizer> tok;
};

Loaded load_generated(sn::engine::TokenizerKind kind) {
  sn::engine::TinyModelSpec spec;
  spec.tokenizer = kind;
  Loaded l;
  l.file = std::make_unique<sn::engine::GgufFile>(
      std::move(*sn::engine::GgufFile::from_bytes("gen.gguf", *sn::engine::generate_tiny_model(spec))));
  l.tok = std::move(*sn::engine::Tokenizer::from_gguf(*l.file));
  return l;
}

Loaded load_shared(const char* rel) {
  const char* dir = std::getenv("SUPERNODE_SHARED_DIR");
  Loaded l;
  sn::Result<sn::engine::GgufFile> f = sn::engine::GgufFile::open(std::string(dir ? dir : "../shared") + "/" + rel);
  if (!f.ok()) return l;
  l.file = std::make_unique<sn::engine::GgufFile>(std::move(*f));
  sn::Result<std::unique_ptr<sn::engine::Tokenizer>> t = sn::engine::Tokenizer::from_gguf(*l.file);
  if (t.ok()) l.tok = std::move(*t);
  return l;
}

std::string english(size_t bytes) {
  const std::string s =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
      "One day, she saw a big, red ball. \"Can I play?\" she asked her friend Tom, who was 7 years old.\n";
  std::string out;
  while (out.size() < bytes) out += s;
  out.resize(bytes);
  return out;
}

void run(benchmark::State& state, const Loaded& l, const std::string& text) {
  if (!l.tok) {
    state.SkipWithError("vocabulary not available");
    return;
  }
  size_t n = 0;
  for (auto _ : state) {
    auto ids = l.tok->encode(text, {.add_special = true});
    n += ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n) / static_cast<double>(state.iterations());
}

void BM_EncodeGeneratedSpm(benchmark::State& s) { static Loaded l = load_generated(sn::engine::TokenizerKind::kSpm); run(s, l, english(10240)); }
void BM_EncodeGeneratedBpe(benchmark::State& s) { static Loaded l = load_generated(sn::engine::TokenizerKind::kBpe); run(s, l, english(10240)); }
void BM_EncodeLlamaSpm10KB(benchmark::State& s) { static Loaded l = load_shared("models/tokenizer-tests/ggml-vocab-llama-spm.gguf"); run(s, l, english(10240)); }
void BM_EncodeDeepseekBpe10KB(benchmark::State& s) { static Loaded l = load_shared("models/tokenizer-tests/ggml-vocab-deepseek-llm.gguf"); run(s, l, english(10240)); }
void BM_EncodeGpt2LongSpaces(benchmark::State& s) { static Loaded l = load_shared("models/tokenizer-tests/ggml-vocab-gpt-2.gguf"); run(s, l, std::string(100000, ' ') + "x"); }

BENCHMARK(BM_EncodeGeneratedSpm);
BENCHMARK(BM_EncodeGeneratedBpe);
BENCHMARK(BM_EncodeLlamaSpm10KB);
BENCHMARK(BM_EncodeDeepseekBpe10KB);
BENCHMARK(BM_EncodeGpt2LongSpaces);

}  // namespace
