// Byte-level BPE ("gpt2" tokenizer.ggml.model), equal to llama.cpp's: the text is split
// by the pre-tokenizer regexes that tokenizer.ggml.pre names (each regex splits every
// piece the previous one left into matches and the gaps between them), each piece is
// mapped to GPT-2's byte alphabet, and within a piece the adjacent pair with the lowest
// merge rank (ties: leftmost) is merged until none is left. Called by the Tokenizer in
// tokenizer.cpp for each raw-text fragment.
//
// The regexes are PCRE2 (UTF + UCP), compiled (and JIT-compiled where available) once
// per tokenizer. `\s` is widened to Unicode White_Space, as llama.cpp treats it, and `$`
// matches only at the very end of a piece.
//
// Thread safety: a BpeEncoder is immutable after create(); encode() makes its own match
// data, so it is safe concurrently.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <queue>
#include <string>
#include <vector>

#include "tokenizer_internal.h"

namespace sn::engine::tok {

namespace {

// Unicode White_Space, the set llama.cpp's \s stands for.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S (in and out of character classes) to the explicit set above.
std::string widen_whitespace(std::string_view re) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\' && i + 1 < re.size()) {
      const char e = re[i + 1];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S))";
constexpr const char* kBloom = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
// DeepSeek LLM: Latin/Greek/Cyrillic/... letters as an explicit class, ASCII and
// full-width punctuation, trailing whitespace, CJK and Hangul runs, digit runs.
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A})"
    R"(\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556})"
    R"(\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
    R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D})"
    R"(\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3})"
    R"(\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})"
    R"(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184})"
    R"(\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D})"
    R"(\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF})"
    R"(\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F})"
    R"(\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct = R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

// The regex list for a tokenizer.ggml.pre value, or empty when unknown.
std::vector<std::string_view> regexes_for(std::string_view pre) {
  auto any_of = [&](std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), pre) != names.end();
  };
  if (any_of({"default", ""})) {
    return {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  }
  if (any_of({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
              "dbrx", "smaug-bpe", "chatglm-bpe", "glm4"})) {
    return {kLlama3};
  }
  if (pre == "deepseek-llm") {
    return {"[\r\n]", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kCjk, R"(\p{N}+)"};
  }
  if (pre == "deepseek-coder") {
    return {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"};
  }
  if (pre == "falcon") {
    return {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"};
  }
  if (any_of({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
    return {R"(\p{N})", kGpt2};
  }
  if (any_of({"gpt-2", "gpt2", "mpt", "olmo", "jais", "trillion", "phi-2", "jina-es", "jina-de", "gigachat",
              "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe"})) {
    return {kGpt2};
  }
  if (any_of({"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", "hunyuan"})) return {kQwen2};
  if (any_of({"gpt-4o", "llama4"})) return {kGpt4o};
  if (pre == "tekken") return {kTekken};
  if (any_of({"poro-chat", "bloom", "gpt3-finnish"})) return {kBloom};
  if (pre == "viking") return {kBloom, R"(\p{N})"};
  return {};
}

}  // namespace

struct BpeEncoder::Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

void BpeEncoder::RegexDeleter::operator()(Regex* re) const { delete re; }

BpeEncoder::~BpeEncoder() = default;

Result<std::unique_ptr<BpeEncoder>> BpeEncoder::create(const Vocab& vocab) {
  const std::vector<std::string_view> exprs = regexes_for(vocab.pre);
  if (exprs.empty()) {
    return Status::not_supported("tokenizer.ggml.pre",
                                 "unknown pre-tokenizer '" + vocab.pre +
                                     "' (supported: default, llama3/llama-bpe, qwen2, deepseek-llm, "
                                     "deepseek-coder, falcon, starcoder, refact, mpt, gpt-2, smollm, "
                                     "gpt-4o, tekken, bloom, ...)");
  }
  std::unique_ptr<BpeEncoder> enc(new BpeEncoder(vocab));
  for (std::string_view expr : exprs) {
    const std::string pattern = widen_whitespace(expr);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    std::unique_ptr<Regex, RegexDeleter> re(new Regex);
    re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_offset, nullptr);
    if (re->code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Status::internal("tokenizer.ggml.pre '" + vocab.pre + "': regex does not compile",
                              std::string(reinterpret_cast<const char*>(msg)) + " at offset " +
                                  std::to_string(err_offset));
    }
    // Without JIT support pcre2_match interprets the pattern; both give the same matches.
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    enc->regexes_.push_back(std::move(re));
  }
  return enc;
}

std::vector<std::string_view> BpeEncoder::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const auto& re : regexes_) {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re->code, nullptr);
    next.clear();
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0;  // where the current gap begins
      size_t from = 0;   // where the next search begins
      while (from < piece.size()) {
        // The text was made valid UTF-8 and pieces start and end on character
        // boundaries: skipping PCRE2's per-call check of the whole rest of the subject
        // keeps a piece with many matches linear.
        int rc = pcre2_match(re->code, subject, piece.size(), from, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
          rc = pcre2_match(re->code, subject, piece.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
        }
        if (rc < 0) break;  // no further match (or a matching error: keep the rest whole)
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) {  // an empty match: step over one character
          from = m0 + std::min(utf8_len(static_cast<uint8_t>(piece[m0])), piece.size() - m0);
          continue;
        }
        if (m0 > start) next.push_back(piece.substr(start, m0 - start));
        next.push_back(piece.substr(m0, m1 - m0));
        start = from = m1;
      }
      if (start < piece.size()) next.push_back(piece.substr(start));
    }
    pcre2_match_data_free(md);
    pieces.swap(next);
  }
  return pieces;
}

namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
  uint32_t n;
  int32_t id;  // the token with this text, or -1
};

struct Bigram {
  int32_t left;
  int32_t right;
  int32_t rank;
  uint32_t size;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void BpeEncoder::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t len = std::min(utf8_len(static_cast<uint8_t>(word[off])), word.size() - off);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, off + len == word.size() ? -1 : index + 1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(len), vocab_.find(word.substr(off, len))});
    off += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    if (l.id < 0 || r.id < 0) return;
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l.id)) << 32) | static_cast<uint32_t>(r.id);
    auto it = vocab_.merge_rank.find(key);
    if (it == vocab_.merge_rank.end()) return;
    queue.push({left, right, it->second, l.n + r.n});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    l.id = vocab_.find(word.substr(l.offset, l.n));
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // Not a token: each byte that is a token on its own (llama.cpp drops the others).
    for (size_t k = 0; k < s.n; ++k) {
      const int32_t id = vocab_.find(word.substr(s.offset + k, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

void BpeEncoder::encode(std::string_view text, std::vector<int32_t>& out) const {
  std::string clean;
  if (sanitize_utf8(text, clean)) text = clean;
  std::string word;
  for (std::string_view piece : split(text)) {
    word.clear();
    for (char c : piece) word += byte_to_unicode(static_cast<uint8_t>(c));
    if (vocab_.ignore_merges) {
      const int32_t id = vocab_.find(word);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    merge_word(word, out);
  }
}

}  // namespace sn::engine::tok
