// See json_lite.h.
#include "json_lite.h"

#include <cstdlib>
#include <cstring>

#include "supernode/base/check.h"

namespace sn::testing {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Json value() {
    ws();
    SN_CHECK(i_ < s_.size()) << "json: unexpected end";
    const char c = s_[i_];
    Json j;
    if (c == '{') {
      j.kind = Json::Kind::kObject;
      ++i_;
      ws();
      if (peek() == '}') {
        ++i_;
        return j;
      }
      for (;;) {
        ws();
        std::string k = string();
        ws();
        expect(':');
        j.obj[k] = value();
        ws();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return j;
      }
    }
    if (c == '[') {
      j.kind = Json::Kind::kArray;
      ++i_;
      ws();
      if (peek() == ']') {
        ++i_;
        return j;
      }
      for (;;) {
        j.arr.push_back(value());
        ws();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return j;
      }
    }
    if (c == '"') {
      j.kind = Json::Kind::kString;
      j.str = string();
      return j;
    }
    if (s_.substr(i_, 4) == "true") {
      i_ += 4;
      j.kind = Json::Kind::kBool;
      j.b = true;
      return j;
    }
    if (s_.substr(i_, 5) == "false") {
      i_ += 5;
      j.kind = Json::Kind::kBool;
      return j;
    }
    if (s_.substr(i_, 4) == "null") {
      i_ += 4;
      return j;
    }
    j.kind = Json::Kind::kNumber;
    std::string num;
    while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_]) != nullptr) num += s_[i_++];
    SN_CHECK(!num.empty()) << "json: bad value at " << i_;
    j.num = std::strtod(num.c_str(), nullptr);
    return j;
  }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  size_t pos() const { return i_; }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    SN_CHECK(peek() == c) << "json: expected '" << c << "' at " << i_;
    ++i_;
  }
  static void utf8(std::string& out, uint32_t cp) {
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
  uint32_t hex4() {
    SN_CHECK(i_ + 4 <= s_.size()) << "json: short \\u escape";
    const uint32_t v = static_cast<uint32_t>(std::strtoul(std::string(s_.substr(i_, 4)).c_str(), nullptr, 16));
    i_ += 4;
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (peek() != '"') {
      SN_CHECK(i_ < s_.size()) << "json: unterminated string";
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      c = s_[i_++];
      switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            const uint32_t lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: out += c;
      }
    }
    ++i_;
    return out;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

const Json& Json::operator[](const std::string& key) const {
  auto it = obj.find(key);
  SN_CHECK(it != obj.end()) << "json: no key " << key;
  return it->second;
}

std::vector<int> Json::ints() const {
  std::vector<int> v;
  for (const Json& j : arr) v.push_back(static_cast<int>(j.num));
  return v;
}

Json parse_json(std::string_view text) {
  Parser p(text);
  return p.value();
}

std::vector<Json> parse_jsonl(std::string_view text) {
  std::vector<Json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (line.find_first_not_of(" \r\t") != std::string_view::npos) out.push_back(parse_json(line));
    start = end + 1;
  }
  return out;
}

}  // namespace sn::testing
