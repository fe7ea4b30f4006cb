// The `supernode` CLI end to end: --help everywhere, usage errors, and the figures the
// engine must show through it (tokenize and perplexity against llama.cpp's references).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_support.h"

#include <CppUTest/TestHarness.h>

namespace {

struct Run {
  int code = -1;
  std::string out;
};

// Runs `supernode ARGS` with stderr discarded (or merged), returning exit code and stdout.
Run supernode(const std::string& args, bool merge_stderr = false) {
  const std::string cmd = sn::testing::bin_dir() + "/supernode " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string last_line(const std::string& s) {
  std::string t = trim(s);
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

TEST_GROUP(Cli){};

TEST(Cli, EveryCommandHasHelpAndRejectsUnknownOptions) {
  for (const char* cmd : {"run", "tokenize", "perplexity", "bench", "logits", "inspect", "hw", "gen-model", "serve-bench"}) {
    Run r = supernode(std::string(cmd) + " --help");
    LONGS_EQUAL_TEXT(0, r.code, cmd);
    CHECK_TEXT(r.out.find(std::string("usage: supernode ") + cmd) != std::string::npos, cmd);
    Run bad = supernode(std::string(cmd) + " --no-such-flag", true);
    LONGS_EQUAL_TEXT(2, bad.code, cmd);
    CHECK_TEXT(bad.out.find("unknown option '--no-such-flag'") != std::string::npos, bad.out.c_str());
  }
  LONGS_EQUAL(0, supernode("--help").code);
  LONGS_EQUAL(2, supernode("frobnicate").code);
}

TEST(Cli, GeneratedModelRunsEndToEnd) {
  sn::testing::TempDir dir;
  for (const char* tk : {"spm", "bpe"}) {
    const std::string model = dir.file(std::string("tiny-") + tk + ".gguf");
    LONGS_EQUAL(0, supernode("gen-model --tokenizer " + std::string(tk) + " -o " + model).code);
    Run r = supernode("run -m " + model + " -p 'once upon a time' -n 12 --temp 0 -t 1");
    LONGS_EQUAL_TEXT(0, r.code, tk);
    CHECK(!trim(r.out).empty());
    Run again = supernode("run -m " + model + " -p 'once upon a time' -n 12 --temp 0 -t 2");
    CHECK_EQUAL(r.out, again.out);  // greedy and thread count independent
    Run s1 = supernode("run -m " + model + " -p 'hello' -n 16 --temp 0.9 --seed 7");
    Run s2 = supernode("run -m " + model + " -p 'hello' -n 16 --temp 0.9 --seed 7");
    CHECK_EQUAL(s1.out, s2.out);
    Run tok = supernode("tokenize -m " + model + " -p 'the little girl'");
    LONGS_EQUAL(0, tok.code);
    CHECK(!trim(tok.out).empty());
    Run inspect = supernode("inspect " + model);
    LONGS_EQUAL(0, inspect.code);
    CHECK(inspect.out.find("blk.1.ffn_down.weight") != std::string::npos);
    Run logits = supernode("logits -m " + model + " -p 'the box' -k 3");
    LONGS_EQUAL(0, logits.code);
    CHECK(logits.out.rfind("[[", 0) == 0);
  }
}

TEST(Cli, ServeBenchRunsBothWorkloads) {
  sn::testing::TempDir dir;
  const std::string model = dir.file("tiny.gguf");
  LONGS_EQUAL(0, supernode("gen-model -o " + model).code);
  Run a = supernode("serve-bench -m " + model + " -t 1 --streams 3 --requests 5 --max-tokens 4 --prompt-tokens 20 --json");
  LONGS_EQUAL(0, a.code);
  CHECK_TEXT(a.out.find("\"requests\":5") != std::string::npos, a.out.c_str());
  CHECK_TEXT(a.out.find("\"output_tokens\":20") != std::string::npos, a.out.c_str());
  sn::testing::write_file(dir.file("prefix.txt"), "the little girl saw a big red ball in the park. ");
  // Workload (b) with a disk tier, then (c): the same again in a new process, whose first
  // request finds the prefix on disk.
  const std::string b_cmd = "serve-bench -m " + model + " -t 1 --prefix-file " + dir.file("prefix.txt") +
                            " --prefix-bytes 600 --requests 3 --kv-dir " + dir.file("kv") + " --json";
  Run b = supernode(b_cmd);
  LONGS_EQUAL(0, b.code);
  for (const char* key : {"\"tier1\":{", "\"tier2\":{", "\"tier3\":{", "\"restart\":{\"ttft_p50_s\""}) {
    CHECK_TEXT(b.out.find(key) != std::string::npos, b.out.c_str());
  }
  CHECK_TEXT(b.out.find("\"restart\":{\"ttft_p50_s\"") != std::string::npos &&
                 b.out.find("\"cached_tokens\":0}") != std::string::npos,
             b.out.c_str());
  CHECK_TEXT(b.out.find("\"tier3\":{\"ttft_p50_s\"") != std::string::npos, b.out.c_str());
  Run c = supernode(b_cmd);
  LONGS_EQUAL(0, c.code);
  const size_t restart = c.out.find("\"restart\":{");
  CHECK_TEXT(restart != std::string::npos, c.out.c_str());
  const size_t cached = c.out.find("\"cached_tokens\":", restart);
  CHECK_TEXT(cached != std::string::npos && c.out.compare(cached, 18, "\"cached_tokens\":0,") != 0 &&
                 c.out[cached + 16] != '0',
             c.out.c_str());
  Run bad = supernode("serve-bench -m " + model + " --streams 0", true);
  LONGS_EQUAL(2, bad.code);
}

TEST(Cli, BadInputGetsClearErrors) {
  sn::testing::TempDir dir;
  Run r = supernode("run -m " + dir.file("missing.gguf") + " -p hi", true);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(r.out.find("missing.gguf: no such file") != std::string::npos, r.out.c_str());
  sn::testing::write_file(dir.file("junk.gguf"), "this is not a model at all");
  r = supernode("inspect " + dir.file("junk.gguf"), true);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(r.out.find("not a GGUF file") != std::string::npos, r.out.c_str());
  r = supernode("run -m x.gguf -p hi -n abc", true);
  LONGS_EQUAL(2, r.code);
  CHECK_TEXT(r.out.find("option '-n' expects an integer, got 'abc'") != std::string::npos, r.out.c_str());
  r = supernode("run -m x.gguf -p hi --temp -3", true);
  LONGS_EQUAL(2, r.code);
  r = supernode("gen-model -o " + dir.file("x.gguf") + " --type q4_0", true);
  LONGS_EQUAL(2, r.code);
}

TEST_GROUP(ModelCli){};

TEST(ModelCli, TokenizeEqualsLlamaCppOnSharedTexts) {
  std::optional<std::string> dir = sn::testing::shared_dir("tokenize references");
  if (!dir) return;
  for (const char* model : {"stories260K", "llama-2-tiny-random"}) {
    for (const char* text : {"story", "tokenize"}) {
      const std::string ref = *dir + "/reference/llamacpp/" + model + ".tokenize-" + text + ".txt";
      Run r = supernode("tokenize -m " + *dir + "/models/" + model + ".gguf -f " + *dir + "/reference/text/" + text + ".txt");
      LONGS_EQUAL(0, r.code);
      CHECK_EQUAL_TEXT(trim(sn::testing::read_file(ref)), trim(r.out), (std::string(model) + " " + text).c_str());
    }
  }
}

TEST(ModelCli, TokenizeWorksOnVocabularyOnlyFiles) {
  std::optional<std::string> vocab = sn::testing::shared_file("models/tokenizer-tests/ggml-vocab-gpt-2.gguf");
  if (!vocab) return;
  Run r = supernode("tokenize -m " + *vocab + " -p 'Hello world'");
  LONGS_EQUAL(0, r.code);
  STRCMP_EQUAL("15496 995", trim(r.out).c_str());
}

TEST(ModelCli, PerplexityOfStories260KMatchesLlamaCpp) {
  std::optional<std::string> dir = sn::testing::shared_dir("perplexity");
  if (!dir) return;
  Run r = supernode("perplexity -m " + *dir + "/models/stories260K.gguf -f " + *dir + "/reference/text/story.txt -c 128");
  LONGS_EQUAL(0, r.code);
  const std::string line = last_line(r.out);
  CHECK_TEXT(line.rfind("perplexity: ", 0) == 0, line.c_str());
  const double ppl = std::strtod(line.c_str() + 12, nullptr);
  std::fprintf(stderr, "stories260K perplexity -c 128: %.4f (llama.cpp 3.9809)\n", ppl);
  CHECK_TEXT(std::abs(ppl - 3.9809) / 3.9809 < 0.005, line.c_str());
  // The first half of each chunk from the prefix cache gives the same figure (batch
  // invariance); through the int8 tier encoding, nearly the same.
  const std::string base = "perplexity -m " + *dir + "/models/stories260K.gguf -f " + *dir + "/reference/text/story.txt -c 128";
  Run split = supernode(base + " --kv-split");
  LONGS_EQUAL(0, split.code);
  STRCMP_EQUAL(line.c_str(), last_line(split.out).c_str());
  Run int8 = supernode(base + " --kv-int8");
  LONGS_EQUAL(0, int8.code);
  const double ppl8 = std::strtod(last_line(int8.out).c_str() + 12, nullptr);
  std::fprintf(stderr, "stories260K perplexity -c 128 with the prefix's KV through int8: %.4f\n", ppl8);
  CHECK_TEXT(std::abs(ppl8 - ppl) / ppl < 0.01, last_line(int8.out).c_str());
}

TEST(ModelCli, RunPrintsTheGreedyContinuation) {
  std::optional<std::string> dir = sn::testing::shared_dir("run");
  if (!dir) return;
  Run r = supernode("run -m " + *dir + "/models/stories260K.gguf -p 'Once upon a time' -n 64 --temp 0");
  LONGS_EQUAL(0, r.code);
  // The first reference record's prompt is "Once upon a time".
  CHECK_TEXT(r.out.find("there was a little girl named Lily") != std::string::npos, r.out.c_str());
}
