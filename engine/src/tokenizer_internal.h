// Private pieces shared by the tokenizer implementation files: the validated vocabulary
// (Vocab, loaded from tokenizer.ggml.* by tokenizer_vocab.cpp), the special-token
// partition every encode starts with, UTF-8 and GPT-2 byte-mapping helpers
// (tokenizer_unicode.cpp), and the two algorithms: SentencePiece-style scored merges
// (tokenizer_spm.cpp) and byte-level BPE with a PCRE2 pre-tokenizer (tokenizer_bpe.cpp).
// Only tokenizer.cpp (the public Tokenizer) calls into this header.
//
// Thread safety: every type here is immutable after construction; const methods are
// safe concurrently (per-call scratch state lives on the caller's stack).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/engine/gguf.h"

namespace sn::engine::tok {

// Token attributes, after llama.cpp's llama_token_attr: the GGUF token_type (1 normal,
// 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; 0 undefined) plus the strip
// flags some vocabularies set on special tokens.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 6,  // swallow ASCII whitespace before the token when matched
  kAttrRstrip = 1u << 7,  // ... and after it
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

enum class VocabKind { kSpm, kBpe };

// Everything tokenizer.ggml.* says, checked. Token texts are owned copies (the Vocab
// outlives nothing; it does not keep the GgufFile alive).
struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::string pre;  // tokenizer.ggml.pre ("default" when absent)
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint32_t> attr;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> to_id;
  // BPE merges: (left id << 32 | right id) -> rank (lower merges first).
  std::unordered_map<uint64_t, int32_t> merge_rank;

  int32_t bos = -1, eos = -1, unk = -1, eot = -1, eom = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  bool ignore_merges = false;  // llama3-style: a pre-token already in the vocab is kept whole
  std::vector<uint8_t> eog;    // per id: ends generation
  // Control, user-defined and unknown tokens, longest text first: matched before the
  // normal algorithm runs.
  std::vector<int32_t> special_cache;

  [[nodiscard]] int32_t n_tokens() const { return static_cast<int32_t>(text.size()); }
  // -1 when `s` is not a token.
  [[nodiscard]] int32_t find(std::string_view s) const {
    auto it = to_id.find(s);
    return it == to_id.end() ? -1 : it->second;
  }
};

// Validates and loads the vocabulary; errors name the key at fault.
[[nodiscard]] Result<std::unique_ptr<Vocab>> load_vocab(const GgufFile& file);

// A piece of the input: either raw text (offset/length into the input) or a token
// matched by its text.
struct Fragment {
  int32_t token = -1;  // >= 0: a special token; -1: raw text
  size_t offset = 0;
  size_t length = 0;
};

// Splits `text` on special-token texts (llama.cpp's rule: user-defined tokens always,
// control and unknown tokens only with `parse_special`).
[[nodiscard]] std::vector<Fragment> partition_special(const Vocab& vocab, std::string_view text,
                                                      bool parse_special);

// --- UTF-8 and byte mapping (tokenizer_unicode.cpp) ---

// Length of the UTF-8 sequence a lead byte announces (1 for continuation/invalid bytes).
[[nodiscard]] inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}
void append_utf8(std::string& out, uint32_t cp);
// Strictly valid UTF-8 (no overlongs, surrogates or values past U+10FFFF); each invalid
// byte becomes U+FFFD. Returns false (and leaves `out` untouched) when `in` is valid.
[[nodiscard]] bool sanitize_utf8(std::string_view in, std::string& out);
// Decodes one code point at `i` of valid UTF-8, advancing `i`.
[[nodiscard]] uint32_t next_codepoint(std::string_view s, size_t& i);
// GPT-2 byte-level alphabet: byte -> its code point's UTF-8, and the inverse (-1 when a
// code point is not in the alphabet).
[[nodiscard]] const std::string& byte_to_unicode(uint8_t b);
[[nodiscard]] int unicode_to_byte(uint32_t cp);
// A GPT-2 byte-level token text back to bytes; code points outside the alphabet are kept.
[[nodiscard]] std::string bpe_text_to_bytes(std::string_view text);
// "<0xAB>" -> 0xAB, else -1.
[[nodiscard]] int parse_byte_token(std::string_view text);

// --- algorithms ---

// SentencePiece-style scored merges over `text` (already escaped: spaces as U+2581).
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

// Byte-level BPE with the pre-tokenizer for vocab.pre. Construction compiles the regexes
// once; encode() allocates its own PCRE2 match data and is safe concurrently.
class BpeEncoder {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BpeEncoder>> create(const Vocab& vocab);
  ~BpeEncoder();
  BpeEncoder(const BpeEncoder&) = delete;
  BpeEncoder& operator=(const BpeEncoder&) = delete;

  void encode(std::string_view text, std::vector<int32_t>& out) const;
  // The pre-tokenizer's split of `text`, as byte ranges. REQUIRES: `text` is valid UTF-8.
  [[nodiscard]] std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Regex;
  struct RegexDeleter {
    void operator()(Regex* re) const;
  };
  explicit BpeEncoder(const Vocab& vocab) : vocab_(vocab) {}
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  std::vector<std::unique_ptr<Regex, RegexDeleter>> regexes_;
};

}  // namespace sn::engine::tok
