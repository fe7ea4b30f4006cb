// SentencePiece-style encoding over a scored vocabulary ("llama" tokenizer.ggml.model),
// equal to llama.cpp's: start from UTF-8 characters, repeatedly merge the adjacent pair
// whose concatenation is a token with the highest score (ties: leftmost), and spell
// what is left unknown with <0xXX> byte tokens. Called by the Tokenizer in
// tokenizer.cpp for each raw-text fragment (already escaped: ' ' -> U+2581).
//
// Thread safety: reads the Vocab only; all scratch state is local. Safe concurrently.
#include <algorithm>
#include <queue>
#include <string>
#include <vector>

#include "tokenizer_internal.h"

namespace sn::engine::tok {

namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;  // into the text; merged symbols stay contiguous
  uint32_t n;       // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  uint32_t size;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

void push_byte_tokens(const Vocab& vocab, std::string_view piece, std::vector<int32_t>& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : piece) {
    const auto b = static_cast<uint8_t>(c);
    const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    int32_t id = vocab.find(std::string_view(name, 6));
    if (id < 0) id = vocab.find(std::string_view(&c, 1));
    if (id < 0) id = vocab.unk;
    if (id >= 0) out.push_back(id);
  }
}

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  if (text.empty()) return;
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, off + len == text.size() ? -1 : index + 1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(len)});
    off += len;
  }

  std::vector<Bigram> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{}, std::move(storage));
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    const int32_t id = vocab.find(text.substr(l.offset, l.n + r.n));
    if (id < 0) return;
    queue.push({left, right, vocab.score[id], l.n + r.n});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    // Stale: one side was merged away, or grew, since this pair was queued.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // Merged symbols are tokens by construction; only single characters can be unknown.
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.offset, s.n);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      push_byte_tokens(vocab, piece, out);
    }
  }
}

}  // namespace sn::engine::tok
