// Tokenizers built from a GGUF vocabulary (`tokenizer.ggml.*` keys):
//   - "llama": SentencePiece-style BPE over scored pieces with <0xXX> byte fallback and
//     the leading-space (U+2581) prefix rule.
//   - "gpt2": byte-level BPE with merges, its pre-tokenizer chosen by tokenizer.ggml.pre
//     (default, llama3/llama-bpe, qwen2, deepseek-llm, deepseek-coder, falcon, starcoder,
//     refact, mpt, gpt-2, smollm, ...), written with PCRE2.
// Special/control tokens, BOS/EOS/add-space rules come from the metadata. The result
// equals llama.cpp's tokenization (../shared/models/tokenizer-tests). Other
// tokenizer.ggml.model values (bert, t5, rwkv) are reported as not supported.
//
//   Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::from_gguf(file);
//   std::vector<int32_t> ids = (*tok)->encode("Hello", {.add_special = true});
//
// Thread safety: a Tokenizer is immutable after construction; encode/decode are safe
// concurrently. An IncrementalDetokenizer belongs to one stream (one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/engine/gguf.h"

namespace sn::engine {

enum class TokenizerKind { kSpm, kBpe };

struct EncodeOptions {
  bool add_special = false;    // add BOS (and EOS) as the metadata's add_bos/add_eos say
  bool parse_special = false;  // recognize control/special token text (e.g. "<|im_end|>")
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds the tokenizer described by `file`'s metadata. Errors name the key at fault
  // (missing tokens, unknown tokenizer.ggml.model or .pre, bad merges, ...).
  [[nodiscard]] static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& file);

  [[nodiscard]] virtual TokenizerKind kind() const = 0;
  // Token ids of `text`, as llama.cpp's llama_tokenize. User-defined tokens' texts are
  // always matched first (control/unknown ones only with parse_special); SPM puts its
  // U+2581 space prefix before the text and again after each matched special token.
  // Invalid UTF-8 becomes U+FFFD before BPE pre-tokenization. Never fails.
  [[nodiscard]] virtual std::vector<int32_t> encode(std::string_view text, EncodeOptions options) const = 0;
  // The bytes a token stands for: U+2581 becomes a space (SPM), byte-level BPE text is
  // mapped back to bytes, a byte-fallback token gives its one raw byte, user-defined
  // tokens give their text as is; control and unknown tokens give their text only when
  // `special` is true (else ""), unused tokens give "". Out-of-range ids give "".
  [[nodiscard]] virtual std::string token_to_piece(int32_t id, bool special = false) const = 0;
  // Concatenated pieces (no clean-up of spaces before punctuation). When the vocab adds a
  // space prefix (SPM) and `ids` starts with BOS, the sequence is the start of a text:
  // with special == false the BOS gives nothing and one leading space is removed from
  // the first non-empty piece, so decode(encode(text, {.add_special = true})) == text;
  // with special == true it reads "<s> text", as llama.cpp prints it. A sequence without
  // a leading BOS is taken as a continuation (generated tokens) and keeps its leading
  // space. (llama.cpp's detokenize strips that space from the first token whatever it
  // is, which loses the space before a generation's first word; we do not.)
  [[nodiscard]] virtual std::string decode(std::span<const int32_t> ids, bool special = false) const = 0;

  [[nodiscard]] virtual int32_t n_vocab() const = 0;
  [[nodiscard]] virtual int32_t bos() const = 0;  // -1 when none
  [[nodiscard]] virtual int32_t eos() const = 0;  // -1 when none
  [[nodiscard]] virtual bool add_bos() const = 0;
  [[nodiscard]] virtual bool add_eos() const = 0;
  // Whether encode puts a space (U+2581) before the text (SPM vocabularies by default).
  [[nodiscard]] virtual bool add_space_prefix() const = 0;
  // End of generation: EOS, EOT, <|im_end|>-style tokens the metadata or vocab mark.
  [[nodiscard]] virtual bool is_eog(int32_t id) const = 0;
  // The piece text of token `id` as stored in the vocab (for inspection).
  [[nodiscard]] virtual std::string_view token_text(int32_t id) const = 0;
};

// Turns a stream of token ids into text, emitting only complete UTF-8 characters; bytes
// of an unfinished character are held until the next token completes it (or flush()).
// The concatenation of everything push() and flush() return equals tok.decode(ids,
// special) for the same ids (including its leading-BOS space rule).
// Thread safety: one stream, one thread; the Tokenizer must outlive it.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tok, bool special = false);
  // Returns the new complete text this token adds (possibly empty).
  std::string push(int32_t id);
  // Returns what is still held (an incomplete character, as is).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool special_;
  bool first_ = true;       // no token pushed yet
  bool strip_space_ = false;  // the stream began with BOS: drop the prefix space once
  std::string pending_;
};

}  // namespace sn::engine
