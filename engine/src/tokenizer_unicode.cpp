// UTF-8 helpers and the GPT-2 byte-level alphabet for the tokenizers (see
// tokenizer_internal.h). Called by the BPE/SPM encoders and by token_to_piece.
//
// Thread safety: pure functions over immutable tables built once (thread-safe static
// initialization); safe from any thread.
#include <array>
#include <string>

#include "tokenizer_internal.h"

namespace sn::engine::tok {

namespace {

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<uint32_t, 256> cp_of_byte{};
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68
// (controls, space, DEL, NBSP, soft hyphen...) are moved, in byte order, to U+0100 and up
// so that every byte has a visible, non-whitespace character.
const ByteTables& byte_tables() {
  static const ByteTables tables = [] {
    ByteTables t;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      t.cp_of_byte[b] = cp;
      append_utf8(t.to_unicode[b], cp);
    }
    return t;
  }();
  return tables;
}

}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not valid.
size_t valid_sequence_at(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 == 0xE0) {
    need = 2, lo = 0xA0;
  } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    need = 2;
  } else if (b0 == 0xED) {
    need = 2, hi = 0x9F;
  } else if (b0 == 0xF0) {
    need = 3, lo = 0x90;
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    need = 3;
  } else if (b0 == 0xF4) {
    need = 3, hi = 0x8F;
  } else {
    return 0;
  }
  if (i + need >= s.size()) return 0;
  for (size_t k = 1; k <= need; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
  }
  return need + 1;
}

}  // namespace

bool sanitize_utf8(std::string_view in, std::string& out) {
  size_t i = 0;
  while (i < in.size()) {
    const size_t n = valid_sequence_at(in, i);
    if (n == 0) break;
    i += n;
  }
  if (i == in.size()) return false;
  out.assign(in.substr(0, i));
  while (i < in.size()) {
    const size_t n = valid_sequence_at(in, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(in.substr(i, n));
      i += n;
    }
  }
  return true;
}

uint32_t next_codepoint(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  size_t n = utf8_len(b0);
  if (i + n > s.size()) n = 1;
  uint32_t cp = 0;
  switch (n) {
    case 1: cp = b0; break;
    case 2: cp = b0 & 0x1Fu; break;
    case 3: cp = b0 & 0x0Fu; break;
    default: cp = b0 & 0x07u; break;
  }
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3Fu);
  i += n;
  return cp;
}

const std::string& byte_to_unicode(uint8_t b) { return byte_tables().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) {
  if (cp >= 0x21 && cp <= 0x7E) return static_cast<int>(cp);
  if ((cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return static_cast<int>(cp);
  if (cp >= 256 && cp < 256 + 68) {
    const auto& t = byte_tables();
    for (int b = 0; b < 256; ++b) {
      if (t.cp_of_byte[b] == cp) return b;
    }
  }
  return -1;
}

std::string bpe_text_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const uint32_t cp = next_codepoint(text, i);
    const int b = unicode_to_byte(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  return out;
}

int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text[0] != '<' || text[1] != '0' || text[2] != 'x' || text[5] != '>') {
    return -1;
  }
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace sn::engine::tok
