// The model: loading and validation, the forward pass's batch invariance, and equality
// with llama.cpp's reference outputs (../shared/reference/llamacpp).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "json_lite.h"
#include "supernode/base/check.h"
#include "supernode/engine/model.h"
#include "supernode/engine/model_gen.h"
#include "supernode/engine/sampling.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::engine::Batch;
using sn::engine::Forward;
using sn::engine::GgufFile;
using sn::engine::GgufWriter;
using sn::engine::KvCache;
using sn::engine::Model;
using sn::engine::Session;
using sn::engine::TinyModelSpec;

namespace {

std::unique_ptr<Model> tiny_model(const TinyModelSpec& spec) {
  sn::Result<std::string> bytes = sn::engine::generate_tiny_model(spec);
  SN_CHECK(bytes.ok()) << bytes.status().to_string();
  sn::Result<GgufFile> f = GgufFile::from_bytes("tiny.gguf", *bytes);
  SN_CHECK(f.ok()) << f.status().to_string();
  sn::Result<std::unique_ptr<Model>> m = Model::from_gguf(std::move(*f));
  SN_CHECK(m.ok()) << m.status().to_string();
  return std::move(*m);
}

// Re-serializes a generated model through `edit`, then loads it; returns the status.
template <typename Edit>
sn::Status load_edited(const TinyModelSpec& spec, Edit edit) {
  sn::Result<std::string> bytes = sn::engine::generate_tiny_model(spec);
  SN_CHECK(bytes.ok());
  sn::Result<GgufFile> f = GgufFile::from_bytes("tiny.gguf", *bytes);
  SN_CHECK(f.ok());
  GgufWriter w;
  edit(*f, w);
  sn::Result<GgufFile> g = GgufFile::from_bytes("edited.gguf", w.serialize());
  if (!g.ok()) return g.status();
  return Model::from_gguf(std::move(*g)).status();
}

std::vector<int32_t> some_tokens(const Model& m, size_t n, uint32_t seed) {
  std::vector<int32_t> t(n);
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    t[i] = static_cast<int32_t>(x % static_cast<uint32_t>(m.config().n_vocab));
  }
  return t;
}

struct Backend {
  explicit Backend(int threads)
      : pool({.n_threads = threads, .pin = false}), be(pool, sn::hal::best_isa()) {}
  sn::hal::ThreadPool pool;
  sn::hal::CpuBackend be;
};

}  // namespace

TEST_GROUP(Forward){};

TEST(Forward, LoadsGeneratedModelsOfEveryArchAndTokenizer) {
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    for (auto kind : {sn::engine::TokenizerKind::kSpm, sn::engine::TokenizerKind::kBpe}) {
      TinyModelSpec spec;
      spec.arch = arch;
      spec.tokenizer = kind;
      std::unique_ptr<Model> m = tiny_model(spec);
      STRCMP_EQUAL(arch, sn::engine::arch_name(m->config().arch));
      LONGS_EQUAL(64, m->config().n_embd);
      LONGS_EQUAL(16, m->config().head_dim);
      CHECK(m->config().rope.neox == (std::string(arch) != "llama"));
      CHECK(m->tokenizer().kind() == kind);
    }
  }
}

TEST(Forward, BatchedPromptEqualsTokenByTokenBitForBit) {
  for (sn::hal::DType type : {sn::hal::DType::kF32, sn::hal::DType::kF16, sn::hal::DType::kBF16}) {
    TinyModelSpec spec;
    spec.type = type;
    spec.arch = type == sn::hal::DType::kF16 ? "qwen2" : (type == sn::hal::DType::kBF16 ? "qwen3" : "llama");
    std::unique_ptr<Model> m = tiny_model(spec);
    Backend b(2);
    const std::vector<int32_t> prompt = some_tokens(*m, 37, 7);
    const int32_t n_vocab = m->config().n_vocab;
    Session whole(*m, b.be, 64);
    std::vector<float> all;
    CHECK_TRUE(whole.eval(prompt, &all, /*all_logits=*/true).is_ok());
    LONGS_EQUAL(prompt.size() * n_vocab, all.size());
    Session step(*m, b.be, 64);
    std::vector<float> one;
    for (size_t i = 0; i < prompt.size(); ++i) {
      CHECK_TRUE(step.eval(std::span<const int32_t>(&prompt[i], 1), &one).is_ok());
      CHECK_EQUAL_TEXT(0, std::memcmp(one.data(), all.data() + i * n_vocab, n_vocab * sizeof(float)),
                       ("position " + std::to_string(i) + " type " + sn::hal::dtype_name(type)).c_str());
    }
  }
}

TEST(Forward, SequencesInOneBatchEqualEachAloneAndThreadCountDoesNotMatter) {
  std::unique_ptr<Model> m = tiny_model({});
  const int32_t n_vocab = m->config().n_vocab;
  const std::vector<int32_t> a = some_tokens(*m, 21, 1);
  const std::vector<int32_t> bb = some_tokens(*m, 9, 2);
  auto alone = [&](const std::vector<int32_t>& toks, int threads) {
    Backend b(threads);
    Session s(*m, b.be, 64);
    std::vector<float> logits;
    SN_CHECK(s.eval(toks, &logits, true, 5).is_ok());
    return logits;
  };
  const std::vector<float> la = alone(a, 1);
  const std::vector<float> lb = alone(bb, 2);
  CHECK_TRUE(la == alone(a, 2));

  // Interleave both sequences in one batch; blocks of the two sequences are interleaved too.
  Backend b(2);
  KvCache cache(m->config(), 8, 16);
  Forward fwd(*m, b.be, cache);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 4; ++i) {
    ta.push_back(cache.alloc());
    tb.push_back(cache.alloc());
  }
  const int32_t* tables[2] = {ta.data(), tb.data()};
  Batch batch;
  size_t ia = 0, ib = 0;
  while (ia < a.size() || ib < bb.size()) {
    if (ib < bb.size()) {
      batch.add(bb[ib], static_cast<int32_t>(ib), 1, true);
      ++ib;
    }
    for (int k = 0; k < 2 && ia < a.size(); ++k, ++ia) batch.add(a[ia], static_cast<int32_t>(ia), 0, true);
  }
  std::vector<float> logits;
  CHECK_TRUE(fwd.run(batch, std::span<const int32_t* const>(tables, 2), &logits).is_ok());
  for (size_t t = 0; t < batch.size(); ++t) {
    const std::vector<float>& ref = batch.seq[t] == 0 ? la : lb;
    const float* expect = ref.data() + static_cast<size_t>(batch.positions[t]) * n_vocab;
    CHECK_EQUAL_TEXT(0, std::memcmp(expect, logits.data() + t * n_vocab, n_vocab * sizeof(float)),
                     ("batch token " + std::to_string(t)).c_str());
  }
}

TEST(Forward, TiedEmbeddingsReuseTokenEmbd) {
  TinyModelSpec spec;
  sn::Result<std::string> bytes = sn::engine::generate_tiny_model(spec);
  sn::Result<GgufFile> f = GgufFile::from_bytes("tiny.gguf", *bytes);
  CHECK_TRUE(f.ok());
  GgufWriter w;
  w.add_from(*f, [](std::string_view) { return true; }, [](std::string_view n) { return n != "output.weight"; });
  sn::Result<GgufFile> g = GgufFile::from_bytes("tied.gguf", w.serialize());
  CHECK_TRUE(g.ok());
  sn::Result<std::unique_ptr<Model>> m = Model::from_gguf(std::move(*g));
  CHECK_TRUE_TEXT(m.ok(), m.status().to_string().c_str());
  CHECK_TRUE((*m)->config().tied_embeddings);
  CHECK((*m)->output().data == (*m)->token_embd().data);
  Backend b(1);
  Session s(**m, b.be, 16);
  std::vector<float> logits;
  CHECK_TRUE(s.eval(some_tokens(**m, 5, 9), &logits).is_ok());
  LONGS_EQUAL((*m)->config().n_vocab, logits.size());
}

TEST(Forward, RejectsBadBatches) {
  std::unique_ptr<Model> m = tiny_model({});
  Backend b(1);
  KvCache cache(m->config(), 2, 16);
  Forward fwd(*m, b.be, cache);
  int32_t blocks[2] = {cache.alloc(), cache.alloc()};
  const int32_t* table = blocks;
  Batch batch;
  batch.add(m->config().n_vocab, 0, 0, true);
  std::vector<float> logits;
  sn::Status s = fwd.run(batch, std::span<const int32_t* const>(&table, 1), &logits);
  CHECK_FALSE(s.is_ok());
  CHECK(s.message().find("outside the vocabulary") != std::string::npos);
  batch.clear();
  batch.add(1, 0, 3, true);
  s = fwd.run(batch, std::span<const int32_t* const>(&table, 1), &logits);
  CHECK(s.message().find("sequence index 3") != std::string::npos);
  Session session(*m, b.be, 4);
  const std::vector<int32_t> five = some_tokens(*m, 5, 3);
  s = session.eval(five, &logits);
  CHECK(s.code() == sn::Status::Code::kResourceExhausted);
}

TEST(Forward, ClearErrorsForBrokenFiles) {
  TinyModelSpec spec;
  auto keep_all = [](std::string_view) { return true; };
  sn::Status s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, keep_all, [](std::string_view n) { return n != "blk.1.ffn_up.weight"; });
  });
  CHECK(s.message().find("required tensor 'blk.1.ffn_up.weight' is missing") != std::string::npos);
  s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, [](std::string_view k) { return k != "general.architecture"; }, keep_all);
    w.add_string("general.architecture", "gptj");
  });
  CHECK(s.code() == sn::Status::Code::kNotSupported);
  CHECK(s.message().find("architecture 'gptj'") != std::string::npos);
  s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, [](std::string_view k) { return k != "llama.attention.head_count_kv"; }, keep_all);
    w.add_u32("llama.attention.head_count_kv", 3);
  });
  CHECK(s.message().find("not a multiple of attention.head_count_kv") != std::string::npos);
  s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, keep_all, [](std::string_view n) { return n != "blk.0.attn_q.weight"; });
    w.add_tensor("blk.0.attn_q.weight", {64, 32}, sn::hal::DType::kF32, std::string(64 * 32 * 4, '\0'));
  });
  CHECK(s.message().find("'blk.0.attn_q.weight' has shape [64, 32], expected [64, 64]") != std::string::npos);
  s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, keep_all, [](std::string_view n) { return n != "blk.0.attn_k.weight"; });
    w.add_tensor("blk.0.attn_k.weight", {64, 32}, sn::hal::DType::kQ8_1, std::string(2 * 36 * 32, '\0'));
  });
  CHECK(s.code() == sn::Status::Code::kNotSupported);
  CHECK(s.message().find("'blk.0.attn_k.weight' has type q8_1") != std::string::npos);
  s = load_edited(spec, [&](const GgufFile& f, GgufWriter& w) {
    w.add_from(f, keep_all, [](std::string_view) { return false; });
  });
  CHECK(s.message().find("vocabulary-only") != std::string::npos);
}

TEST_GROUP(Sampling){};

TEST(Sampling, GreedyAndSeededSamplingAreDeterministic) {
  std::vector<float> logits = sn::testing::random_floats(500, 3, -5, 5);
  const int32_t best = sn::engine::argmax(logits);
  sn::engine::Sampler greedy({.temperature = 0});
  LONGS_EQUAL(best, greedy.sample(logits, {}));
  sn::engine::Sampler k1({.temperature = 1.0f, .top_k = 1, .seed = 5});
  LONGS_EQUAL(best, k1.sample(logits, {}));
  std::vector<int32_t> a, b;
  sn::engine::Sampler s1({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 42});
  sn::engine::Sampler s2({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 42});
  for (int i = 0; i < 50; ++i) {
    a.push_back(s1.sample(logits, {}));
    b.push_back(s2.sample(logits, {}));
  }
  CHECK_TRUE(a == b);
  // A high temperature over all tokens does not always pick the best one.
  bool varied = false;
  for (int32_t x : a) varied |= x != best;
  CHECK_TRUE(varied);
}

TEST(Sampling, FiltersAndPenalties) {
  std::vector<float> logits = {1.0f, 3.0f, 2.9f, -4.0f};
  // min_p 0.5 keeps tokens with p >= 0.5 p_max: ids 1 and 2 only.
  sn::engine::Sampler mp({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.5f, .seed = 1});
  for (int i = 0; i < 200; ++i) {
    const int32_t t = mp.sample(logits, {});
    CHECK(t == 1 || t == 2);
  }
  // top_p 0.3: the top token alone holds p = 0.49 >= 0.3, so only it is kept.
  sn::engine::Sampler tp({.temperature = 1.0f, .top_k = 0, .top_p = 0.3f, .min_p = 0.0f, .seed = 1});
  for (int i = 0; i < 200; ++i) LONGS_EQUAL(1, tp.sample(logits, {}));
  // A repeat penalty of 2 on token 1 (logit 3 -> 1.5) makes token 2 the greedy choice.
  sn::engine::Sampler rp({.temperature = 0, .repeat_penalty = 2.0f});
  const int32_t hist[] = {1};
  LONGS_EQUAL(2, rp.sample(logits, hist));
  // Presence penalty subtracts once, frequency per occurrence.
  sn::engine::Sampler fp({.temperature = 0, .frequency_penalty = 0.05f, .presence_penalty = 0.0f});
  const int32_t hist3[] = {1, 1, 1};
  LONGS_EQUAL(2, fp.sample(logits, hist3));  // 3 - 0.15 < 2.9
  CHECK_FALSE(sn::engine::SamplingParams{.temperature = -1}.validate().is_ok());
  CHECK_FALSE(sn::engine::SamplingParams{.top_p = 0}.validate().is_ok());
  CHECK_TRUE(sn::engine::SamplingParams{}.validate().is_ok());
}

TEST(Sampling, StopStringsSplitAcrossTokens) {
  sn::engine::StopMatcher m({"</end>", "STOP"});
  std::string out;
  out += m.push("Hello </");
  STRCMP_EQUAL("Hello ", out.c_str());  // "</" may start "</end>": held back
  out += m.push("e");
  out += m.push("x> and ST");
  STRCMP_EQUAL("Hello </ex> and ", out.c_str());
  out += m.push("OP more");
  CHECK_TRUE(m.stopped());
  STRCMP_EQUAL("Hello </ex> and ", out.c_str());
  sn::engine::StopMatcher none({});
  STRCMP_EQUAL("abc", none.push("abc").c_str());
  sn::engine::StopMatcher tail({"xyz"});
  STRCMP_EQUAL("ab", tail.push("abx").c_str());
  STRCMP_EQUAL("x", tail.flush().c_str());
}

// ---- against llama.cpp ----

namespace {

std::string test_models_dir() {
  const char* env = std::getenv("SUPERNODE_TEST_MODELS");
  return env != nullptr ? env : "build/models";
}

struct Tolerance {
  double worst = 0;
  std::string where;
};

// Our logits at the ids of llama.cpp's top-k, each within `rel` relative of its value.
void check_top(const sn::testing::Json& top, const float* ours, double rel, const std::string& where, Tolerance* tol) {
  for (const sn::testing::Json& pair : top.arr) {
    const int id = static_cast<int>(pair[0].num);
    const double ref = pair[1].num;
    const double err = std::fabs(ours[id] - ref) / std::max(std::fabs(ref), 1e-6);
    if (err > tol->worst) {
      tol->worst = err;
      tol->where = where + " id " + std::to_string(id) + ": ours " + std::to_string(ours[id]) + " ref " + std::to_string(ref);
    }
    CHECK_TEXT(err <= rel, (where + ": id " + std::to_string(id) + " ours " + std::to_string(ours[id]) + " llama.cpp " +
                            std::to_string(ref))
                               .c_str());
  }
}

// Teacher-forced check of one reference record: prompt then the reference greedy tokens.
void check_reference_record(const Model& m, sn::hal::CpuBackend& be, const sn::testing::Json& rec, const std::string& name,
                            bool exact_greedy, Tolerance* tol) {
  const std::vector<int> prompt = rec["prompt_tokens"].ints();
  const std::vector<int> greedy = rec["greedy"].ints();
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  seq.insert(seq.end(), greedy.begin(), greedy.end());
  Session s(m, be, static_cast<int32_t>(seq.size() + 1));
  std::vector<float> logits;
  CHECK_TRUE(s.eval(std::span<const int32_t>(seq.data(), prompt.size()), &logits, true).is_ok());
  const int32_t n_vocab = m.config().n_vocab;
  for (size_t p = 0; p < prompt.size(); ++p) {
    check_top(rec["prompt_top5"][p], logits.data() + p * n_vocab, 0.02, name + " prompt pos " + std::to_string(p), tol);
  }
  std::vector<float> last(logits.end() - n_vocab, logits.end());
  for (size_t g = 0; g < greedy.size(); ++g) {
    check_top(rec["greedy_top5"][g], last.data(), 0.02, name + " greedy step " + std::to_string(g), tol);
    if (exact_greedy) {
      CHECK_EQUAL_TEXT(greedy[g], sn::engine::argmax(last), (name + " greedy step " + std::to_string(g)).c_str());
    }
    const int32_t tok = greedy[g];
    CHECK_TRUE(s.eval(std::span<const int32_t>(&tok, 1), &last).is_ok());
  }
}

}  // namespace

TEST_GROUP(ModelReference){};

TEST(ModelReference, Stories260KGreedyEqualsLlamaCpp) {
  std::optional<std::string> path = sn::testing::shared_file("models/stories260K.gguf");
  std::optional<std::string> ref = sn::testing::shared_file("reference/llamacpp/stories260K.greedy.jsonl");
  if (!path || !ref) return;
  sn::Result<std::unique_ptr<Model>> m = Model::load(*path);
  CHECK_TRUE_TEXT(m.ok(), m.status().to_string().c_str());
  Backend b(2);
  Tolerance tol;
  const std::vector<sn::testing::Json> recs = sn::testing::parse_jsonl(sn::testing::read_file(*ref));
  CHECK(recs.size() >= 8);
  for (const sn::testing::Json& rec : recs) {
    const std::string& prompt = rec["prompt"].str;
    // Our tokenization of the prompt equals llama.cpp's.
    std::vector<int32_t> ids = (*m)->tokenizer().encode(prompt, {.add_special = true, .parse_special = true});
    const std::vector<int> expect = rec["prompt_tokens"].ints();
    CHECK_TRUE_TEXT(std::vector<int>(ids.begin(), ids.end()) == expect, prompt.c_str());
    // Free-running greedy generation (not teacher-forced) equals all 64 tokens.
    Session s(**m, b.be, 128);
    std::vector<float> logits;
    CHECK_TRUE(s.eval(ids, &logits).is_ok());
    std::vector<int> gen;
    for (int i = 0; i < 64; ++i) {
      const int32_t next = sn::engine::argmax(logits);
      gen.push_back(next);
      CHECK_TRUE(s.eval(std::span<const int32_t>(&next, 1), &logits).is_ok());
    }
    CHECK_TRUE_TEXT(gen == rec["greedy"].ints(), ("greedy of: " + prompt).c_str());
    CHECK_EQUAL(rec["greedy_text"].str, (*m)->tokenizer().decode(std::vector<int32_t>(gen.begin(), gen.end())));
    check_reference_record(**m, b.be, rec, "stories260K '" + prompt + "'", true, &tol);
  }
  std::fprintf(stderr, "stories260K: worst relative logit error %.5f (%s)\n", tol.worst, tol.where.c_str());
}

TEST(ModelReference, RandomModelsOfEveryTypeAndArchMatchLlamaCppLogits) {
  std::optional<std::string> dir = sn::testing::shared_dir("reference logits");
  if (!dir) return;
  Backend b(2);
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*dir + "/reference/llamacpp")) {
    const std::string file = entry.path().filename().string();
    const std::string suffix = ".logits.jsonl";
    if (file.size() <= suffix.size() || file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string name = file.substr(0, file.size() - suffix.size());
    const std::string model_path = test_models_dir() + "/" + name + ".gguf";
    // Mixture-of-experts references wait for their architectures (ModelPending reports them).
    if (sn::testing::is_pending_model(name)) continue;
    CHECK_TEXT(std::filesystem::exists(model_path), (model_path + " not generated (scripts/make-test-models.sh)").c_str());
    sn::Result<std::unique_ptr<Model>> m = Model::load(model_path);
    CHECK_TRUE_TEXT(m.ok(), m.status().to_string().c_str());
    Tolerance tol;
    for (const sn::testing::Json& rec : sn::testing::parse_jsonl(sn::testing::read_file(entry.path().string()))) {
      std::vector<int32_t> ids = (*m)->tokenizer().encode(rec["prompt"].str, {.add_special = true, .parse_special = true});
      CHECK_TRUE_TEXT(std::vector<int>(ids.begin(), ids.end()) == rec["prompt_tokens"].ints(), name.c_str());
      check_reference_record(**m, b.be, rec, name, false, &tol);
    }
    std::fprintf(stderr, "%s: worst relative logit error %.5f (%s)\n", name.c_str(), tol.worst, tol.where.c_str());
    ++checked;
  }
  std::fprintf(stderr, "reference logits: %d models checked\n", checked);
  CHECK(checked >= 17);  // every llama, qwen2 and qwen3 reference in ../shared
}
