// The public Tokenizer (supernode/engine/tokenizer.h): builds a tok::Vocab from GGUF
// metadata, then encodes as llama.cpp does (special-token partition first, then SPM or
// BPE on each raw fragment, BOS/EOS per the metadata) and decodes token pieces.
// Called by the engine's model loader, the scheduler (is_eog) and the daemon (encode
// prompts, stream output through IncrementalDetokenizer).
//
// Thread safety: a Tokenizer is immutable after from_gguf(); all const methods are safe
// concurrently. An IncrementalDetokenizer is used by one thread.
#include "supernode/engine/tokenizer.h"

#include <string>
#include <utility>

#include "tokenizer_internal.h"

namespace sn::engine {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

class VocabTokenizer final : public Tokenizer {
 public:
  explicit VocabTokenizer(std::unique_ptr<tok::Vocab> vocab) : vocab_(std::move(vocab)) {}

  Status init() {
    if (vocab_->kind == tok::VocabKind::kBpe) {
      Result<std::unique_ptr<tok::BpeEncoder>> enc = tok::BpeEncoder::create(*vocab_);
      if (!enc.ok()) return enc.status();
      bpe_ = std::move(*enc);
    }
    return Status::ok();
  }

  TokenizerKind kind() const override {
    return vocab_->kind == tok::VocabKind::kSpm ? TokenizerKind::kSpm : TokenizerKind::kBpe;
  }

  std::vector<int32_t> encode(std::string_view text, EncodeOptions options) const override {
    const tok::Vocab& v = *vocab_;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (options.add_special && v.add_bos && v.bos >= 0) out.push_back(v.bos);
    const std::vector<tok::Fragment> frags = tok::partition_special(v, text, options.parse_special);
    if (v.kind == tok::VocabKind::kSpm) {
      // llama.cpp puts the space prefix before the text and again after every special
      // token, as if each raw fragment began a text of its own.
      bool after_special = true;
      std::string escaped;
      for (const tok::Fragment& f : frags) {
        if (f.token >= 0) {
          out.push_back(f.token);
          after_special = true;
          continue;
        }
        escaped.clear();
        if (v.add_space_prefix && after_special) escaped += kSpaceMark;
        for (char c : text.substr(f.offset, f.length)) {
          if (c == ' ') {
            escaped += kSpaceMark;
          } else {
            escaped += c;
          }
        }
        tok::spm_encode(v, escaped, out);
        after_special = false;
      }
    } else {
      for (const tok::Fragment& f : frags) {
        if (f.token >= 0) {
          out.push_back(f.token);
        } else {
          bpe_->encode(text.substr(f.offset, f.length), out);
        }
      }
    }
    if (options.add_special && v.add_eos && v.eos >= 0) out.push_back(v.eos);
    return out;
  }

  std::string token_to_piece(int32_t id, bool special) const override {
    const tok::Vocab& v = *vocab_;
    if (id < 0 || id >= v.n_tokens()) return {};
    const uint32_t attr = v.attr[id];
    const std::string& text = v.text[id];
    if ((attr & (tok::kAttrControl | tok::kAttrUnknown)) != 0) return special ? text : std::string();
    if ((attr & tok::kAttrUserDefined) != 0) return text;
    if (v.kind == tok::VocabKind::kSpm) {
      if ((attr & tok::kAttrByte) != 0) {
        const int b = tok::parse_byte_token(text);
        return b >= 0 ? std::string(1, static_cast<char>(b)) : text;
      }
      if ((attr & tok::kAttrNormal) == 0) return {};
      std::string out;
      out.reserve(text.size());
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
          out += ' ';
          i += kSpaceMark.size();
        } else {
          out += text[i++];
        }
      }
      return out;
    }
    if ((attr & (tok::kAttrNormal | tok::kAttrByte)) == 0) return {};
    return tok::bpe_text_to_bytes(text);
  }

  std::string decode(std::span<const int32_t> ids, bool special) const override {
    std::string out;
    bool strip = false;
    size_t i = 0;
    if (vocab_->add_space_prefix && !ids.empty() && ids[0] == vocab_->bos && vocab_->bos >= 0) {
      if (special) {
        out += token_to_piece(ids[0], true);
      } else {
        strip = true;
      }
      i = 1;
    }
    for (; i < ids.size(); ++i) {
      std::string piece = token_to_piece(ids[i], special);
      if (strip && !piece.empty()) {
        if (piece[0] == ' ') piece.erase(0, 1);
        strip = false;
      }
      out += piece;
    }
    return out;
  }

  int32_t n_vocab() const override { return vocab_->n_tokens(); }
  int32_t bos() const override { return vocab_->bos; }
  int32_t eos() const override { return vocab_->eos; }
  bool add_bos() const override { return vocab_->add_bos; }
  bool add_eos() const override { return vocab_->add_eos; }
  bool add_space_prefix() const override { return vocab_->add_space_prefix; }
  bool is_eog(int32_t id) const override {
    return id >= 0 && id < vocab_->n_tokens() && vocab_->eog[id] != 0;
  }
  std::string_view token_text(int32_t id) const override {
    if (id < 0 || id >= vocab_->n_tokens()) return {};
    return vocab_->text[id];
  }

 private:
  std::unique_ptr<tok::Vocab> vocab_;
  std::unique_ptr<tok::BpeEncoder> bpe_;  // BPE only; refers to *vocab_
};

// Bytes at the end of `s` that begin a UTF-8 character not yet complete.
size_t incomplete_tail(const std::string& s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    const size_t need = b >= 0xF8 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;  // 0xF8+: never a lead
    return need > back ? back : 0;
  }
  return 0;  // only continuation bytes: invalid, emit as is
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& file) {
  Result<std::unique_ptr<tok::Vocab>> vocab = tok::load_vocab(file);
  if (!vocab.ok()) return vocab.status();
  auto tok = std::make_unique<VocabTokenizer>(std::move(*vocab));
  Status st = tok->init();
  if (!st.is_ok()) return st.with_context(file.path());
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, bool special)
    : tok_(tok), special_(special) {}

std::string IncrementalDetokenizer::push(int32_t id) {
  std::string piece;
  if (first_) {
    first_ = false;
    if (tok_.add_space_prefix() && id >= 0 && id == tok_.bos()) {
      if (!special_) {
        strip_space_ = true;
        return {};
      }
      piece = tok_.token_to_piece(id, true);
    } else {
      piece = tok_.token_to_piece(id, special_);
    }
  } else {
    piece = tok_.token_to_piece(id, special_);
  }
  if (strip_space_ && !piece.empty()) {
    if (piece[0] == ' ') piece.erase(0, 1);
    strip_space_ = false;
  }
  pending_ += piece;
  const size_t hold = incomplete_tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string IncrementalDetokenizer::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace sn::engine
