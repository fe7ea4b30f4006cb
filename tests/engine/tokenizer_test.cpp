// Tokenizers: unit tests on small synthetic vocabularies written with GgufWriter
// (group Tokenizer), and llama.cpp's own vectors and reference tokenizations from
// ../shared (groups ModelTokenizer*, skipped with a message when ../shared is absent).
// Thread safety: run on the test thread only.
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "supernode/engine/gguf.h"
#include "supernode/engine/tokenizer.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::engine::EncodeOptions;
using sn::engine::GgufFile;
using sn::engine::GgufWriter;
using sn::engine::IncrementalDetokenizer;
using sn::engine::Tokenizer;
using sn::engine::TokenizerKind;

namespace {

using Ids = std::vector<int32_t>;

std::string ids_str(const Ids& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

#define CHECK_IDS(expected, actual) STRCMP_EQUAL(ids_str(expected).c_str(), ids_str(actual).c_str())

std::unique_ptr<Tokenizer> load(const std::string& bytes, const char* name = "mem.gguf") {
  sn::Result<GgufFile> f = GgufFile::from_bytes(name, bytes);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  sn::Result<std::unique_ptr<Tokenizer>> t = Tokenizer::from_gguf(*f);
  CHECK_TRUE_TEXT(t.ok(), t.status().to_string().c_str());
  return std::move(*t);
}

sn::Status load_error(const std::string& bytes) {
  sn::Result<GgufFile> f = GgufFile::from_bytes("bad.gguf", bytes);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  sn::Result<std::unique_ptr<Tokenizer>> t = Tokenizer::from_gguf(*f);
  CHECK_FALSE(t.ok());
  return t.status();
}

void check_message(const sn::Status& s, const char* what) {
  CHECK_TRUE_TEXT(s.message().find(what) != std::string::npos, s.to_string().c_str());
}

// --- a small SPM vocabulary: <unk> <s> </s>, 256 byte tokens, then scored pieces ---

const char* const kSpace = "\xE2\x96\x81";

struct SpmSpec {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int32_t id(const std::string& t) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == t) return static_cast<int32_t>(i);
    }
    FAIL(("no token " + t).c_str());
    return -1;
  }
};

SpmSpec spm_spec() {
  SpmSpec s;
  auto add = [&](std::string t, float score, int32_t type) {
    s.tokens.push_back(std::move(t));
    s.scores.push_back(score);
    s.types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0, 6);
  }
  const std::string sp = kSpace;
  // Pieces: single characters, then merges with scores that decide the order.
  for (const char* c : {"h", "e", "l", "o", "w", "r", "d"}) add(c, -10, 1);
  add(sp, -5, 1);
  add("he", -3, 1);
  add("ll", -2, 1);
  add("hell", -1.5f, 1);
  add("hello", -1, 1);
  add(sp + "hello", -0.5f, 1);
  add("wo", -4, 1);
  add("rl", -4, 1);
  add("wor", -3.5f, 1);
  add("world", -3.2f, 1);
  add(sp + "w", -6, 1);
  add("<tag>", 0, 4);  // user-defined
  return s;
}

std::string spm_file(const SpmSpec& s, bool with_types = true) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", s.tokens);
  w.add_f32_array("tokenizer.ggml.scores", s.scores);
  if (with_types) w.add_i32_array("tokenizer.ggml.token_type", s.types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  w.add_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  return w.serialize();
}

// --- a small byte-level BPE vocabulary over GPT-2's byte alphabet ---

std::string byte_char(int b) {
  // GPT-2 bytes_to_unicode, written out independently of the implementation.
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    const bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174);
    int cp = keep ? x : 256 + n++;
    if (x == b) {
      std::string out;
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
      return out;
    }
  }
  return {};
}

struct BpeSpec {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  int32_t id(const std::string& t) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == t) return static_cast<int32_t>(i);
    }
    FAIL(("no token " + t).c_str());
    return -1;
  }
};

BpeSpec bpe_spec() {
  BpeSpec s;
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(byte_char(b));
    s.types.push_back(1);
  }
  const std::string G = byte_char(' ');  // "Ġ"
  auto merge = [&](const std::string& a, const std::string& b) {
    s.merges.push_back(a + " " + b);
    s.tokens.push_back(a + b);
    s.types.push_back(1);
  };
  merge("h", "e");
  merge(G, "t");
  merge(G + "t", "he");
  merge("l", "l");
  merge("he", "ll");
  merge("hell", "o");
  merge(G, "hello");
  merge("1", "2");
  s.tokens.push_back("<|endoftext|>");
  s.types.push_back(3);
  s.tokens.push_back("<|im_end|>");
  s.types.push_back(3);
  s.tokens.push_back("  ");  // user-defined, raw text (as in the mpt vocab)
  s.types.push_back(4);
  return s;
}

std::string bpe_file(const BpeSpec& s, const std::string& pre = "gpt-2") {
  GgufWriter w;
  w.add_string("general.architecture", "gpt2");
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", s.tokens);
  w.add_i32_array("tokenizer.ggml.token_type", s.types);
  w.add_string_array("tokenizer.ggml.merges", s.merges);
  w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(s.id("<|endoftext|>")));
  w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(s.id("<|endoftext|>")));
  return w.serialize();
}

std::string detokenize_stream(const Tokenizer& tok, const Ids& ids, bool check_utf8) {
  IncrementalDetokenizer detok(tok);
  std::string all;
  for (int32_t id : ids) {
    std::string part = detok.push(id);
    if (check_utf8 && !part.empty()) {
      // Never ends inside a character: the last lead byte has all its continuation bytes.
      size_t i = part.size();
      size_t back = 0;
      while (i > 0 && (static_cast<uint8_t>(part[i - 1]) & 0xC0) == 0x80) --i, ++back;
      CHECK(i > 0);
      const auto lead = static_cast<uint8_t>(part[i - 1]);
      const size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
      CHECK_EQUAL(need, back);
    }
    all += part;
  }
  return all + detok.flush();
}

}  // namespace

TEST_GROUP(Tokenizer){};

TEST(Tokenizer, SpmMergesByScoreWithSpacePrefix) {
  SpmSpec s = spm_spec();
  auto tok = load(spm_file(s));
  CHECK(tok->kind() == TokenizerKind::kSpm);
  CHECK_TRUE(tok->add_space_prefix());
  // "▁hello" merges all the way; in "▁world", "wo" and "rl" tie at -4 and the leftmost
  // ("wo") wins, then "wor" (-3.5) beats "▁w" (-6) and "rl" is gone.
  Ids ids = tok->encode("hello world", {});
  CHECK_IDS((Ids{s.id(std::string(kSpace) + "hello"), s.id(kSpace), s.id("wor"), s.id("l"), s.id("d")}), ids);
  // add_special: BOS (SPM adds it by default), no EOS.
  Ids with_bos = tok->encode("hello", {.add_special = true});
  CHECK_IDS((Ids{1, s.id(std::string(kSpace) + "hello")}), with_bos);
  CHECK_IDS(Ids{}, tok->encode("", {}));
  CHECK_IDS(Ids{1}, tok->encode("", {.add_special = true}));
}

TEST(Tokenizer, SpmHighestScoreWinsOverLeftmost) {
  SpmSpec s = spm_spec();
  auto tok = load(spm_file(s));
  // "hell": "he" (-3) and "ll" (-2) compete; "ll" merges first, then "he", then "hell".
  Ids ids = tok->encode("hell", {});
  CHECK_IDS((Ids{s.id(kSpace), s.id("hell")}), ids);
}

TEST(Tokenizer, SpmByteFallbackAndDecode) {
  SpmSpec s = spm_spec();
  auto tok = load(spm_file(s));
  // U+00E9 is not a piece: spelled with its two bytes.
  Ids ids = tok->encode("h\xC3\xA9", {});
  CHECK_IDS((Ids{s.id(kSpace), s.id("h"), 3 + 0xC3, 3 + 0xA9}), ids);
  STRCMP_EQUAL(" h\xC3\xA9", tok->decode(ids).c_str());
  STRCMP_EQUAL("\xC3", tok->token_to_piece(3 + 0xC3).c_str());
  // With BOS the prefix space is dropped: decode inverts encode(add_special).
  Ids full = tok->encode("hello h\xC3\xA9", {.add_special = true});
  STRCMP_EQUAL("hello h\xC3\xA9", tok->decode(full).c_str());
  STRCMP_EQUAL("<s> hello h\xC3\xA9", tok->decode(full, true).c_str());
  STRCMP_EQUAL(tok->decode(full).c_str(), detokenize_stream(*tok, full, true).c_str());
}

TEST(Tokenizer, SpmSpecialTokens) {
  SpmSpec s = spm_spec();
  auto tok = load(spm_file(s));
  const std::string hello = std::string(kSpace) + "hello";
  // Control tokens are text unless parse_special; the space prefix restarts after one.
  Ids plain = tok->encode("hello</s>", {});
  CHECK(plain.size() > 2);
  Ids parsed = tok->encode("hello</s>hello", {.parse_special = true});
  CHECK_IDS((Ids{s.id(hello), 2, s.id(hello)}), parsed);
  // User-defined tokens are matched even without parse_special.
  Ids user = tok->encode("hello<tag>", {});
  CHECK_IDS((Ids{s.id(hello), s.id("<tag>")}), user);
  STRCMP_EQUAL("<tag>", tok->token_to_piece(s.id("<tag>")).c_str());
  STRCMP_EQUAL("", tok->token_to_piece(2).c_str());
  STRCMP_EQUAL("</s>", tok->token_to_piece(2, true).c_str());
  CHECK_TRUE(tok->is_eog(2));
  CHECK_FALSE(tok->is_eog(1));
  CHECK_EQUAL(1, tok->bos());
  CHECK_EQUAL(2, tok->eos());
  STRCMP_EQUAL("", tok->token_to_piece(-1).c_str());
  STRCMP_EQUAL("", tok->token_to_piece(tok->n_vocab()).c_str());
}

TEST(Tokenizer, SpmWithoutTokenTypesTreatsAllAsNormal) {
  SpmSpec s = spm_spec();
  auto tok = load(spm_file(s, false));
  CHECK_IDS((Ids{1, s.id(std::string(kSpace) + "hello")}), tok->encode("hello", {.add_special = true}));
}

TEST(Tokenizer, BpeMergesByRank) {
  BpeSpec s = bpe_spec();
  auto tok = load(bpe_file(s));
  CHECK(tok->kind() == TokenizerKind::kBpe);
  CHECK_FALSE(tok->add_bos());
  CHECK_FALSE(tok->add_space_prefix());
  const std::string G = byte_char(' ');
  Ids ids = tok->encode("hello the 123", {});
  CHECK_IDS((Ids{s.id("hello"), s.id(G + "the"), s.id(G), s.id("12"), s.id("3")}), ids);
  STRCMP_EQUAL("hello the 123", tok->decode(ids).c_str());
  // add_special adds nothing: the metadata does not ask for BOS.
  CHECK_IDS(ids, tok->encode("hello the 123", {.add_special = true}));
}

TEST(Tokenizer, BpeSpecialAndUserDefinedTokens) {
  BpeSpec s = bpe_spec();
  auto tok = load(bpe_file(s));
  const int32_t eot = s.id("<|endoftext|>");
  const int32_t im_end = s.id("<|im_end|>");
  Ids plain = tok->encode("he<|im_end|>", {});
  CHECK(plain.size() > 2);
  CHECK_IDS((Ids{s.id("he"), im_end}), tok->encode("he<|im_end|>", {.parse_special = true}));
  // The raw-text user-defined token "  " is matched before the regex, always.
  CHECK_IDS((Ids{s.id("he"), s.id("  "), s.id("he")}), tok->encode("he  he", {}));
  STRCMP_EQUAL("he  he", tok->decode(tok->encode("he  he", {})).c_str());
  CHECK_TRUE(tok->is_eog(eot));
  CHECK_TRUE(tok->is_eog(im_end));
  CHECK_FALSE(tok->is_eog(s.id("he")));
  STRCMP_EQUAL("", tok->token_to_piece(im_end).c_str());
  STRCMP_EQUAL("<|im_end|>", tok->token_to_piece(im_end, true).c_str());
}

TEST(Tokenizer, BpeBytesAndIncrementalUtf8) {
  BpeSpec s = bpe_spec();
  auto tok = load(bpe_file(s));
  const std::string text = "\xC3\xA9\xF0\x9F\x98\x80 ok \xE4\xB8\xAD";
  Ids ids = tok->encode(text, {});
  CHECK_EQUAL(text.size(), ids.size());  // no merges apply: one byte token each
  STRCMP_EQUAL(text.c_str(), tok->decode(ids).c_str());
  STRCMP_EQUAL(text.c_str(), detokenize_stream(*tok, ids, true).c_str());
  // An unfinished character is held, then given back by flush().
  IncrementalDetokenizer d(*tok);
  STRCMP_EQUAL("", d.push(ids[0]).c_str());
  STRCMP_EQUAL("\xC3", d.flush().c_str());
  // A broken sequence is not held forever: the next character lets it through.
  const int32_t a = s.id("a");
  STRCMP_EQUAL("", d.push(ids[0]).c_str());
  STRCMP_EQUAL("\xC3" "a", d.push(a).c_str());
  STRCMP_EQUAL("", d.flush().c_str());
  // Invalid UTF-8 input becomes U+FFFD, as llama.cpp does.
  Ids bad = tok->encode("a\xFF", {});
  STRCMP_EQUAL("a\xEF\xBF\xBD", tok->decode(bad).c_str());
}

TEST(Tokenizer, BpePreTokenizersAllCompile) {
  BpeSpec s = bpe_spec();
  for (const char* pre : {"default", "llama3", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "falcon",
                          "starcoder", "refact", "mpt", "gpt-2", "smollm", "gpt-4o", "tekken", "bloom", "viking",
                          "command-r", "stablelm2", "dbrx"}) {
    auto tok = load(bpe_file(s, pre));
    const std::string text = "Hello  world 12345 it's \xE4\xB8\xAD\xE6\x96\x87\n\n  x!";
    STRCMP_EQUAL_TEXT(text.c_str(), tok->decode(tok->encode(text, {})).c_str(), pre);
  }
  // llama3-style pre-tokenizers add BOS by default.
  CHECK_TRUE(load(bpe_file(s, "llama-bpe"))->add_bos());
}

TEST(Tokenizer, Llama3PreTokenizerKeepsWholeTokens) {
  BpeSpec s = bpe_spec();
  const std::string G = byte_char(' ');
  for (const std::string& t : {std::string("Hello"), G + "world", std::string("123"), std::string("45"), G + "it",
                               std::string("'s")}) {
    s.tokens.push_back(t);
    s.types.push_back(1);
  }
  const std::string text = "Hello world 12345 it's";
  // llama3: letters with one leading non-letter, digits in threes, a lone space before
  // digits, contractions apart; a piece that is a token is kept whole (ignore_merges).
  auto llama3 = load(bpe_file(s, "llama-bpe"));
  CHECK_IDS((Ids{s.id("Hello"), s.id(G + "world"), s.id(G), s.id("123"), s.id("45"), s.id(G + "it"), s.id("'s")}),
            llama3->encode(text, {}));
  CHECK_IDS((Ids{s.id("<|endoftext|>"), s.id("Hello")}), llama3->encode("Hello", {.add_special = true}));
  // qwen2: the same but one digit at a time, and merges apply even where the piece is
  // a token ("Hello" goes through "l l" only).
  auto qwen2 = load(bpe_file(s, "qwen2"));
  CHECK_IDS((Ids{s.id("1"), s.id("2"), s.id("3")}), qwen2->encode("123", {}));
  CHECK_IDS((Ids{s.id("H"), s.id("e"), s.id("ll"), s.id("o")}), qwen2->encode("Hello", {}));
}

TEST(Tokenizer, LongRunsRoundTripInLinearTime) {
  BpeSpec s = bpe_spec();
  const std::vector<std::string> texts = {std::string(100000, ' ') + "x", std::string(100000, 'a'),
                                          std::string(100000, '7'), "x" + std::string(50000, '\n') + "y",
                                          std::string(30000, '!') + " " + std::string(30000, '\t')};
  for (const char* pre : {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "falcon", "gpt-4o"}) {
    auto tok = load(bpe_file(s, pre));
    for (const std::string& text : texts) {
      // A quadratic pre-tokenizer would make this take minutes (ctest's timeout catches
      // it); the speed itself is measured in bench/, not asserted here.
      const Ids ids = tok->encode(text, {});
      CHECK_TRUE_TEXT(tok->decode(ids) == text, pre);
    }
  }
  SpmSpec spm = spm_spec();
  auto tok = load(spm_file(spm));
  for (const std::string& text : texts) CHECK_TRUE(tok->decode(tok->encode(text, {.add_special = true})) == text);
}

TEST(Tokenizer, ThreadsEncodeConcurrently) {
  BpeSpec s = bpe_spec();
  auto tok = load(bpe_file(s));
  const Ids want = tok->encode("hello the 12 hello", {});
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int i = 0; i < 200; ++i) good += tok->encode("hello the 12 hello", {}) == want ? 1 : 0;
      ok[t] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) CHECK_EQUAL(200, v);
}

TEST(Tokenizer, RejectsBadMetadata) {
  {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    check_message(load_error(w.serialize()), "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "sentencepiece-ish");
    w.add_string_array("tokenizer.ggml.tokens", {"a"});
    check_message(load_error(w.serialize()), "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    check_message(load_error(w.serialize()), "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.add_f32_array("tokenizer.ggml.scores", {1.0f});
    check_message(load_error(w.serialize()), "tokenizer.ggml.scores");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.add_i32_array("tokenizer.ggml.token_type", {1, 9});
    check_message(load_error(w.serialize()), "tokenizer.ggml.token_type");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.add_u32("tokenizer.ggml.eos_token_id", 7);
    check_message(load_error(w.serialize()), "tokenizer.ggml.eos_token_id");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string("tokenizer.ggml.tokens", "a");
    check_message(load_error(w.serialize()), "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "llama");
    w.add_string_array("tokenizer.ggml.tokens", {"a"});
    w.add_u32("tokenizer.ggml.add_bos_token", 1);
    check_message(load_error(w.serialize()), "tokenizer.ggml.add_bos_token");
  }
  BpeSpec s = bpe_spec();
  check_message(load_error(bpe_file(s, "no-such-pre")), "tokenizer.ggml.pre");
  BpeSpec bad_merge = s;
  bad_merge.merges.push_back("hello");
  check_message(load_error(bpe_file(bad_merge)), "tokenizer.ggml.merges");
  BpeSpec unknown_part = s;
  unknown_part.merges.push_back("zz qq");
  check_message(load_error(bpe_file(unknown_part)), "tokenizer.ggml.merges");
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string_array("tokenizer.ggml.tokens", {"a"});
    check_message(load_error(w.serialize()), "tokenizer.ggml.merges");
  }
  {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "bert");
    w.add_string_array("tokenizer.ggml.tokens", {"a"});
    sn::Status st = load_error(w.serialize());
    CHECK(st.code() == sn::Status::Code::kNotSupported);
  }
}

// --- ../shared: llama.cpp's vectors and reference tokenizations ---

namespace {

std::vector<std::string> split_inputs(const std::string& inp) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < inp.size()) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      out.push_back(inp.substr(pos));
      break;
    }
    out.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

Ids parse_ids(const std::string& line) {
  Ids ids;
  std::istringstream in(line);
  int64_t v = 0;
  while (in >> v) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::unique_ptr<Tokenizer> load_path(const std::string& path, GgufFile* keep) {
  sn::Result<GgufFile> f = GgufFile::open(path);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  sn::Result<std::unique_ptr<Tokenizer>> t = Tokenizer::from_gguf(*f);
  CHECK_TRUE_TEXT(t.ok(), t.status().to_string().c_str());
  *keep = std::move(*f);
  return std::move(*t);
}

// Runs one vocab's vectors; returns the number of failing inputs (details on stderr).
int run_vectors(const std::string& name) {
  const std::string base = "models/tokenizer-tests/ggml-vocab-" + name + ".gguf";
  auto gguf = sn::testing::shared_file(base);
  auto inp = sn::testing::shared_file(base + ".inp");
  auto out = sn::testing::shared_file(base + ".out");
  if (!gguf || !inp || !out) return 0;
  sn::Result<GgufFile> f = GgufFile::open(*gguf);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  sn::Result<std::unique_ptr<Tokenizer>> t = Tokenizer::from_gguf(*f);
  CHECK_TRUE_TEXT(t.ok(), t.status().to_string().c_str());
  const Tokenizer& tok = **t;
  const std::vector<std::string> inputs = split_inputs(sn::testing::read_file(*inp));
  const std::vector<std::string> expected = lines(sn::testing::read_file(*out));
  CHECK_EQUAL(46u, inputs.size());
  CHECK_EQUAL(inputs.size(), expected.size());
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Ids want = parse_ids(expected[i]);
    const Ids got = tok.encode(inputs[i], {.add_special = false, .parse_special = false});
    if (got != want) {
      ++failures;
      std::fprintf(stderr, "%s input %zu: want [%s] got [%s]\n", name.c_str(), i, ids_str(want).c_str(),
                   ids_str(got).c_str());
      continue;
    }
    // The ids also decode back to the input (SPM: with the prefix space).
    const std::string text = tok.decode(got);
    const std::string want_text = tok.add_space_prefix() && !inputs[i].empty() ? " " + inputs[i] : inputs[i];
    if (text != want_text) {
      ++failures;
      std::fprintf(stderr, "%s input %zu: decodes to '%s'\n", name.c_str(), i, text.c_str());
    }
  }
  std::fprintf(stderr, "vocab %-16s %zu/%zu inputs match llama.cpp\n", name.c_str(), inputs.size() - failures,
               inputs.size());
  return failures;
}

}  // namespace

TEST_GROUP(ModelTokenizerVectors){};

TEST(ModelTokenizerVectors, SpmVocabs) {
  if (!sn::testing::shared_dir("tokenizer vectors")) return;
  int failures = 0;
  for (const char* name : {"llama-spm", "phi-3"}) failures += run_vectors(name);
  CHECK_EQUAL(0, failures);
}

TEST(ModelTokenizerVectors, BpeVocabs) {
  if (!sn::testing::shared_dir("tokenizer vectors")) return;
  int failures = 0;
  for (const char* name : {"gpt-2", "falcon", "mpt", "starcoder", "refact", "deepseek-llm", "deepseek-coder"}) {
    failures += run_vectors(name);
  }
  CHECK_EQUAL(0, failures);
}

// The WordPiece vectors themselves are reported by ModelPending (pending_test.cpp).
TEST(ModelTokenizerVectors, BertIsRefusedClearly) {
  auto gguf = sn::testing::shared_file("models/tokenizer-tests/ggml-vocab-bert-bge.gguf");
  if (!gguf) return;
  sn::Result<GgufFile> f = GgufFile::open(*gguf);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  sn::Result<std::unique_ptr<Tokenizer>> t = Tokenizer::from_gguf(*f);
  CHECK_FALSE(t.ok());
  CHECK(t.status().code() == sn::Status::Code::kNotSupported);
}

TEST_GROUP(ModelTokenizerReference){};

TEST(ModelTokenizerReference, LlamaTokenizeFiles) {
  if (!sn::testing::shared_dir("llama-tokenize references")) return;
  for (const char* model : {"stories260K", "llama-2-tiny-random"}) {
    auto path = sn::testing::shared_file(std::string("models/") + model + ".gguf");
    if (!path) return;
    GgufFile keep = std::move(*GgufFile::from_bytes("empty", GgufWriter().serialize()));
    auto tok = load_path(*path, &keep);
    for (const char* text : {"story", "tokenize"}) {
      auto ref = sn::testing::shared_file(std::string("reference/llamacpp/") + model + ".tokenize-" + text + ".txt");
      auto src = sn::testing::shared_file(std::string("reference/text/") + text + ".txt");
      if (!ref || !src) return;
      const std::string content = sn::testing::read_file(*src);
      const Ids want = parse_ids(sn::testing::read_file(*ref));
      // llama-tokenize parses special tokens by default; these texts hold no special
      // token text, so both settings give the reference.
      const Ids got = tok->encode(content, {.add_special = true, .parse_special = true});
      STRCMP_EQUAL_TEXT(ids_str(want).c_str(), ids_str(got).c_str(), (std::string(model) + " " + text).c_str());
      CHECK_IDS(want, tok->encode(content, {.add_special = true, .parse_special = false}));
      STRCMP_EQUAL(content.c_str(), tok->decode(got).c_str());
      STRCMP_EQUAL(content.c_str(), detokenize_stream(*tok, got, true).c_str());
    }
  }
}

TEST(ModelTokenizerReference, KnownPrompts) {
  auto path = sn::testing::shared_file("models/stories260K.gguf");
  if (!path) return;
  GgufFile keep = std::move(*GgufFile::from_bytes("empty", GgufWriter().serialize()));
  auto tok = load_path(*path, &keep);
  CHECK_IDS((Ids{1, 403, 407, 261, 378}), tok->encode("Once upon a time", {.add_special = true}));
  auto path2 = sn::testing::shared_file("models/llama-2-tiny-random.gguf");
  if (!path2) return;
  auto tok2 = load_path(*path2, &keep);
  CHECK_IDS((Ids{1, 15043, 3186}), tok2->encode("Hello world", {.add_special = true}));
}

TEST(ModelTokenizerReference, Encodes10KBQuickly) {
  auto spm = sn::testing::shared_file("models/tokenizer-tests/ggml-vocab-llama-spm.gguf");
  auto bpe = sn::testing::shared_file("models/tokenizer-tests/ggml-vocab-deepseek-llm.gguf");
  auto text_path = sn::testing::shared_file("reference/text/story.txt");
  if (!spm || !bpe || !text_path) return;
  std::string text;
  const std::string story = sn::testing::read_file(*text_path);
  while (text.size() < 10240) text += story;
  text.resize(10240);
  for (const std::string& path : {*spm, *bpe}) {
    GgufFile keep = std::move(*GgufFile::from_bytes("empty", GgufWriter().serialize()));
    auto tok = load_path(path, &keep);
    double best_ms = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      const Ids ids = tok->encode(text, {.add_special = true});
      const auto t1 = std::chrono::steady_clock::now();
      best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(t1 - t0).count());
      CHECK(ids.size() > 1000);
    }
    std::fprintf(stderr, "encode 10 KB with %s: %.2f ms (reported, not asserted)\n", path.c_str(), best_ms);
  }
}
