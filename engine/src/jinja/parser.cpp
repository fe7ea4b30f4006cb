// Lexer and parser of the Jinja2 subset: source text -> tokens (with jinja2's whitespace
// control: trim_blocks, lstrip_blocks, `-` and `+` markers, raw blocks, comments) ->
// statement and expression trees (ast.h). Operator precedence follows jinja2's parser:
// condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < postfix/filters.
// Templates are untrusted: lexing is linear in the source, and nesting is bounded
// (kMaxNesting for the parser's recursion, kMaxExprHeight for the trees it builds), so
// that deep input is a syntax error rather than a stack overflow.
// Called by ChatTemplate::parse; pure functions, safe concurrently.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "jinja/ast.h"

namespace sn::engine::jinja {
namespace {

[[noreturn]] void syntax_error(int line, const std::string& msg) {
  throw JinjaError(JinjaError::Kind::kTemplate, "TemplateSyntaxError: " + msg + " (line " + std::to_string(line) + ")", line);
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.rstrip() / the regex \s* on UTF-8 text.
std::string rstrip_ws(std::string_view s) { return py_strip(s, nullptr, false, true); }
// Decodes one code point at a time: stripping the rest of the source as a whole would
// make a template of many `-%}` tags quadratic to lex.
size_t skip_ws_unicode(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    const size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    const std::u32string u = utf8_decode(s.substr(pos, len));
    if (u.size() != 1 || !is_py_space(u[0])) break;  // a bad sequence decodes to U+FFFD first
    pos += len;
  }
  return pos;
}
bool all_ws(std::string_view s) {
  if (s.empty()) return false;
  for (char32_t c : utf8_decode(s)) {
    if (!is_py_space(c)) return false;
  }
  return true;
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) {
    // Newlines become \n and one trailing newline is dropped (keep_trailing_newline=False).
    src_.reserve(src.size());
    for (size_t k = 0; k < src.size(); ++k) {
      if (src[k] == '\r') {
        src_ += '\n';
        if (k + 1 < src.size() && src[k + 1] == '\n') ++k;
      } else {
        src_ += src[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_data(src_.substr(pos));
        break;
      }
      std::string text = src_.substr(pos, tag - pos);
      const char kind = src_[tag + 1];  // '%', '{' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      text = apply_lstrip(std::move(text), sign, kind != '{', line_starting);
      emit_data(text);
      line_ += count_nl(src_.substr(pos, tag - pos));
      size_t p = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        const size_t end = src_.find("#}", p);
        if (end == std::string::npos) syntax_error(line_, "missing end of comment tag");
        const char esign = end > p ? src_[end - 1] : '\0';
        size_t after = end + 2;
        if (esign == '-') {
          after = skip_ws_unicode(src_, after);
        } else if (esign != '+' && after < src_.size() && src_[after] == '\n') {
          ++after;
        }
        line_ += count_nl(src_.substr(tag, after - tag));
        line_starting = after > 0 && src_[after - 1] == '\n';
        pos = after;
        continue;
      }
      if (kind == '%') {
        size_t raw_end = 0;
        if (match_word(p, "raw", &raw_end)) {
          pos = lex_raw(tag, raw_end, &line_starting);
          continue;
        }
      }
      pos = lex_tag(kind == '%', p, &line_starting);
    }
    tokens_.push_back(Token{Tok::kEof, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  static int count_nl(std::string_view s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
  }

  size_t find_tag(size_t pos) const {
    for (size_t k = pos; k + 1 < src_.size(); ++k) {
      if (src_[k] == '{' && (src_[k + 1] == '%' || src_[k + 1] == '{' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  std::string apply_lstrip(std::string text, char sign, bool lstrip_kind, bool line_starting) const {
    if (sign == '-') return rstrip_ws(text);
    if (sign != '+' && lstrip_kind) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && all_ws(std::string_view(text).substr(l_pos))) text.resize(l_pos);
    }
    return text;
  }

  void emit_data(const std::string& text) {
    if (text.empty()) return;
    tokens_.push_back(Token{Tok::kData, text, 0, 0, line_});
  }

  // After `{%[-+]?`: whitespace, `word`, whitespace, then `-%}` or `%}`? Sets *end past
  // the closing tag (the `-` variant also eats following whitespace).
  bool match_word(size_t p, const char* word, size_t* end) const {
    while (p < src_.size() && is_ws(src_[p])) ++p;
    const size_t n = std::strlen(word);
    if (src_.compare(p, n, word) != 0) return false;
    p += n;
    if (p < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) return false;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "-%}") == 0) {
      *end = skip_ws_unicode(src_, p + 3);
      return true;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      *end = p + 2;
      return true;
    }
    return false;
  }

  size_t lex_raw(size_t tag, size_t body_start, bool* line_starting) {
    line_ += count_nl(src_.substr(tag, body_start - tag));
    *line_starting = body_start > 0 && src_[body_start - 1] == '\n';
    size_t search = body_start;
    while (true) {
      const size_t t = src_.find("{%", search);
      if (t == std::string::npos) syntax_error(line_, "missing end of raw directive");
      size_t p = t + 2;
      const char sign = p < src_.size() ? src_[p] : '\0';
      if (sign == '-' || sign == '+') ++p;
      while (p < src_.size() && is_ws(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = t + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_ws(src_[p])) ++p;
      size_t after;
      if (src_.compare(p, 3, "+%}") == 0) {
        after = p + 3;
      } else if (src_.compare(p, 3, "-%}") == 0) {
        after = skip_ws_unicode(src_, p + 3);
      } else if (src_.compare(p, 2, "%}") == 0) {
        after = p + 2;
        if (after < src_.size() && src_[after] == '\n') ++after;
      } else {
        search = t + 2;
        continue;
      }
      std::string text = apply_lstrip(src_.substr(body_start, t - body_start), sign, true, *line_starting);
      emit_data(text);
      line_ += count_nl(src_.substr(body_start, after - body_start));
      *line_starting = src_[after - 1] == '\n';
      return after;
    }
  }

  size_t lex_tag(bool block, size_t p, bool* line_starting) {
    tokens_.push_back(Token{block ? Tok::kBlockBegin : Tok::kVarBegin, "", 0, 0, line_});
    int depth = 0;
    while (true) {
      while (p < src_.size() && is_ws(src_[p])) {
        if (src_[p] == '\n') ++line_;
        ++p;
      }
      if (p >= src_.size()) syntax_error(line_, block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
      if (depth == 0) {
        const char* close = block ? "%}" : "}}";
        size_t after = 0;
        if (block && src_.compare(p, 3, "+%}") == 0) {
          after = p + 3;
        } else if (src_.compare(p, 1, "-") == 0 && src_.compare(p + 1, 2, close) == 0) {
          after = skip_ws_unicode(src_, p + 3);
        } else if (src_.compare(p, 2, close) == 0) {
          after = p + 2;
          if (block && after < src_.size() && src_[after] == '\n') ++after;
        }
        if (after != 0) {
          tokens_.push_back(Token{block ? Tok::kBlockEnd : Tok::kVarEnd, "", 0, 0, line_});
          line_ += count_nl(src_.substr(p, after - p));
          *line_starting = src_[after - 1] == '\n';
          return after;
        }
      }
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back(Token{Tok::kName, src_.substr(p, e - p), 0, 0, line_});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = lex_number(p);
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]",
                                           "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};
        const char* op = nullptr;
        for (const char* o : kOps) {
          if (src_.compare(p, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        }
        if (op == nullptr) {
          const std::u32string u = utf8_decode(std::string_view(src_).substr(p, 4));
          char buf[32];
          std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(u.empty() ? 0 : u[0]));
          syntax_error(line_, std::string("unexpected character ") + buf);
        }
        if (*op == '(' || *op == '[' || *op == '{') ++depth;
        if (*op == ')' || *op == ']' || *op == '}') {
          if (depth == 0) syntax_error(line_, std::string("unexpected '") + op + "'");
          --depth;
        }
        tokens_.push_back(Token{Tok::kOp, op, 0, 0, line_});
        p += std::strlen(op);
      }
    }
  }

  size_t lex_number(size_t p) {
    size_t e = p;
    auto digits = [&]() {
      while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
    };
    digits();
    bool is_float = false;
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    if (!after_dot && e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (!after_dot && e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        is_float = true;
        e = q;
        digits();
      }
    }
    std::string text;
    for (size_t k = p; k < e; ++k) {
      if (src_[k] != '_') text += src_[k];
    }
    Token t{is_float ? Tok::kFloat : Tok::kInt, text, 0, 0, line_};
    if (is_float) {
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      errno = 0;
      t.i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) syntax_error(line_, "integer literal too large");
    }
    tokens_.push_back(std::move(t));
    return e;
  }

  // Python's unicode-escape decoding of a quoted literal.
  size_t lex_string(size_t p) {
    const char q = src_[p];
    const int start_line = line_;
    std::string out;
    size_t k = p + 1;
    auto hex = [&](size_t n) -> char32_t {
      if (k + n > src_.size()) syntax_error(line_, "truncated escape in string literal");
      char32_t v = 0;
      for (size_t j = 0; j < n; ++j) {
        const char h = src_[k + j];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= h - '0';
        else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
        else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
        else syntax_error(line_, "bad escape in string literal");
      }
      k += n;
      return v;
    };
    while (true) {
      if (k >= src_.size()) syntax_error(start_line, "unterminated string literal");
      const char c = src_[k];
      if (c == q) {
        ++k;
        break;
      }
      if (c == '\n') ++line_;
      if (c != '\\') {
        out += c;
        ++k;
        continue;
      }
      ++k;
      if (k >= src_.size()) syntax_error(start_line, "unterminated string literal");
      const char e = src_[k++];
      switch (e) {
        case '\n': ++line_; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case 'x': utf8_append(out, hex(2)); break;
        case 'u': utf8_append(out, hex(4)); break;
        case 'U': utf8_append(out, hex(8)); break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = e - '0';
            for (int j = 0; j < 2 && k < src_.size() && src_[k] >= '0' && src_[k] <= '7'; ++j) v = v * 8 + (src_[k++] - '0');
            utf8_append(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back(Token{Tok::kString, out, 0, 0, start_line});
    return k;
  }

  std::string src_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  std::unique_ptr<Program> run() {
    auto prog = std::make_unique<Program>();
    std::string end;
    prog->body = parse_body({}, &end);
    return prog;
  }

 private:
  const Token& cur() const { return t_[pos_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(pos_ + n, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::kName && cur().text == n; }
  void next() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kString: return "string";
      case Tok::kData: return "template data";
      default: return "'" + t.text + "'";
    }
  }
  [[noreturn]] void unexpected(const char* wanted) const {
    syntax_error(cur().line, "expected " + std::string(wanted) + ", got " + describe(cur()));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected((std::string("'") + op + "'").c_str());
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) unexpected("end of statement block");
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) unexpected("a name");
    std::string n = cur().text;
    next();
    return n;
  }

  ExprPtr make(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // Records the height of `e`, whose children are complete (and sealed), and refuses
  // trees taller than kMaxExprHeight.
  ExprPtr seal(ExprPtr e) {
    int h = 0;
    for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()}) {
      if (c) h = std::max(h, c->height);
    }
    for (const auto& x : e->items) {
      if (x) h = std::max(h, x->height);
    }
    for (const auto& kv : e->kwargs) h = std::max(h, kv.second->height);
    e->height = h + 1;
    if (e->height > kMaxExprHeight) {
      syntax_error(e->line, "expression nested too deeply (more than " + std::to_string(kMaxExprHeight) + " levels)");
    }
    return e;
  }

  // ----- statements -----

  // Parses until a block tag whose name is in `ends` (consumed; its name stored in *end).
  Body parse_body(const std::set<std::string>& ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) {
        if (!ends.empty()) syntax_error(t.line, "unexpected end of template; expected one of: " + join(ends));
        return body;
      }
      if (t.type == Tok::kData) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kText;
        n->line = t.line;
        n->text = t.text;
        body.push_back(std::move(n));
        next();
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        next();
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kOutput;
        n->line = t.line;
        n->expr = parse_tuple(true);
        if (cur().type != Tok::kVarEnd) unexpected("end of print statement");
        next();
        body.push_back(std::move(n));
        continue;
      }
      if (t.type != Tok::kBlockBegin) unexpected("template data or a tag");
      next();
      if (cur().type != Tok::kName) unexpected("a statement name");
      const std::string name = cur().text;
      if (ends.count(name)) {
        next();
        *end = name;
        return body;
      }
      body.push_back(parse_statement());
    }
  }

  static std::string join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : ", ") + x;
    return out;
  }

  NodePtr parse_statement() {
    const int line = cur().line;
    DepthGuard depth_guard(this);
    const std::string name = expect_name();
    auto n = std::make_unique<Node>();
    n->line = line;
    if (name == "if") {
      n->kind = NodeKind::kIf;
      ExprPtr cond = parse_tuple(false);  // jinja2: no inline if-expression here
      expect_block_end();
      while (true) {
        std::string end;
        Body b = parse_body({"elif", "else", "endif"}, &end);
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = parse_tuple(false);
          expect_block_end();
        } else if (end == "else") {
          expect_block_end();
          Body eb = parse_body({"endif"}, &end);
          n->branches.emplace_back(nullptr, std::move(eb));
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (name == "for") {
      n->kind = NodeKind::kFor;
      n->target = parse_assign_target(false);
      const bool targets_loop = n->target->kind == ExprKind::kName
                                    ? n->target->name == "loop"
                                    : std::any_of(n->target->items.begin(), n->target->items.end(),
                                                  [](const ExprPtr& t) { return t->name == "loop"; });
      if (targets_loop) syntax_error(line, "can't assign to special loop variable in for-loop target");
      if (!skip_name("in")) unexpected("'in'");
      n->expr = parse_tuple(false);
      if (is_name("recursive")) syntax_error(cur().line, "recursive loops are not supported");
      if (skip_name("if")) n->cond = parse_expr(true);
      expect_block_end();
      std::string end;
      n->body = parse_body({"endfor", "else"}, &end);
      if (end == "else") {
        expect_block_end();
        n->else_body = parse_body({"endfor"}, &end);
      }
      expect_block_end();
    } else if (name == "set") {
      n->target = parse_assign_target(true);
      if (skip_op("=")) {
        n->kind = NodeKind::kSet;
        n->expr = parse_tuple(true);
        expect_block_end();
      } else {
        n->kind = NodeKind::kSetBlock;
        if (n->target->kind != ExprKind::kName) syntax_error(line, "block set needs a plain name");
        if (is_op("|")) n->expr = parse_filter_chain(nullptr);
        expect_block_end();
        std::string end;
        n->body = parse_body({"endset"}, &end);
        expect_block_end();
      }
    } else if (name == "macro") {
      n->kind = NodeKind::kMacro;
      n->text = expect_name();
      expect_op("(");
      while (!skip_op(")")) {
        if (!n->params.empty()) expect_op(",");
        if (skip_op(")")) break;
        std::string p = expect_name();
        ExprPtr def;
        if (skip_op("=")) def = parse_expr(true);
        n->params.emplace_back(std::move(p), std::move(def));
      }
      expect_block_end();
      std::string end;
      n->body = parse_body({"endmacro"}, &end);
      if (cur().type == Tok::kName && cur().text == n->text) next();
      expect_block_end();
    } else if (name == "filter") {
      n->kind = NodeKind::kFilterBlock;
      n->expr = parse_filter_chain(nullptr, true);
      expect_block_end();
      std::string end;
      n->body = parse_body({"endfilter"}, &end);
      expect_block_end();
    } else if (name == "with") {
      n->kind = NodeKind::kWith;
      while (cur().type != Tok::kBlockEnd) {
        if (!n->params.empty()) expect_op(",");
        std::string var = expect_name();
        expect_op("=");
        n->params.emplace_back(std::move(var), parse_expr(true));
      }
      expect_block_end();
      std::string end;
      n->body = parse_body({"endwith"}, &end);
      expect_block_end();
    } else if (name == "break" || name == "continue") {
      n->kind = name == "break" ? NodeKind::kBreak : NodeKind::kContinue;
      expect_block_end();
    } else {
      syntax_error(line, "unknown or unsupported tag '" + name + "'");
    }
    return n;
  }

  // A name, a tuple of names (optionally parenthesized) or, for set, ns.attr.
  ExprPtr parse_assign_target(bool allow_attr) {
    const int line = cur().line;
    auto one = [&]() -> ExprPtr {
      auto e = make(ExprKind::kName, cur().line);
      e->name = expect_name();
      if (e->name == "none" || e->name == "None" || e->name == "true" || e->name == "True" || e->name == "false" ||
          e->name == "False") {
        syntax_error(e->line, "can't assign to '" + e->name + "'");
      }
      if (allow_attr && skip_op(".")) {
        auto g = make(ExprKind::kGetattr, line);
        g->name = expect_name();
        g->a = std::move(e);
        return seal(std::move(g));
      }
      return e;
    };
    if (skip_op("(")) {
      auto t = make(ExprKind::kTuple, line);
      while (!skip_op(")")) {
        if (!t->items.empty()) expect_op(",");
        if (skip_op(")")) break;
        t->items.push_back(one());
      }
      return seal(std::move(t));
    }
    ExprPtr first = one();
    if (!is_op(",")) return first;
    auto t = make(ExprKind::kTuple, line);
    t->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type != Tok::kName) break;
      t->items.push_back(one());
    }
    return seal(std::move(t));
  }

  // ----- expressions -----

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxNesting) syntax_error(p_->cur().line, "template nested too deeply");
    }
    ~DepthGuard() { --p_->depth_; }
    Parser* p_;
  };

  ExprPtr parse_tuple(bool with_cond) {
    const int line = cur().line;
    ExprPtr first = parse_expr(with_cond);
    if (!is_op(",")) return first;
    auto t = make(ExprKind::kTuple, line);
    t->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || is_op(")") || is_name("if")) break;
      t->items.push_back(parse_expr(with_cond));
    }
    return seal(std::move(t));
  }

  ExprPtr parse_expr(bool with_cond) {
    DepthGuard g(this);
    if (!with_cond) return parse_or();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      next();
      auto c = make(ExprKind::kCond, line);
      c->a = parse_or();
      c->b = std::move(e);
      if (skip_name("else")) c->c = parse_expr(true);
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, int line) {
    auto e = make(ExprKind::kBinary, line);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    return seal(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      next();
      l = binary("or", std::move(l), parse_and(), line);
    }
    return l;
  }

  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      next();
      l = binary("and", std::move(l), parse_not(), line);
    }
    return l;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(this);
      auto e = make(ExprKind::kNot, cur().line);
      next();
      e->a = parse_not();
      return seal(std::move(e));
    }
    return parse_compare();
  }

  // A chain a op1 b op2 c: kCompare with a = first operand and kwargs = (op, operand).
  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr l = parse_math1();
    ExprPtr c;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                     cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!c) {
        c = make(ExprKind::kCompare, line);
        c->a = std::move(l);
      }
      c->kwargs.emplace_back(op, parse_math1());
    }
    return c ? seal(std::move(c)) : std::move(l);
  }

  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      l = binary(op, std::move(l), parse_concat(), line);
    }
    return l;
  }

  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      next();
      l = binary("~", std::move(l), parse_math2(), line);
    }
    return l;
  }

  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      l = binary(op, std::move(l), parse_pow(), line);
    }
    return l;
  }

  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      next();
      l = binary("**", std::move(l), parse_unary(true), line);
    }
    return l;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().line);
      next();
      node->a = parse_unary(false);
      node = seal(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == Tok::kName) {
      const std::string& n = t.text;
      ExprPtr e = make(ExprKind::kLiteral, line);
      if (n == "true" || n == "True") {
        e->value = Value::boolean(true);
      } else if (n == "false" || n == "False") {
        e->value = Value::boolean(false);
      } else if (n == "none" || n == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = n;
      }
      next();
      return e;
    }
    if (t.type == Tok::kString) {
      std::string s;
      while (cur().type == Tok::kString) {
        s += cur().text;
        next();
      }
      ExprPtr e = make(ExprKind::kLiteral, line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      ExprPtr e = make(ExprKind::kLiteral, line);
      e->value = t.type == Tok::kInt ? Value::integer(t.i) : Value::number(t.f);
      next();
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) {
        ExprPtr e = make(ExprKind::kTuple, line);
        return e;
      }
      ExprPtr first = parse_expr(true);
      if (skip_op(")")) return first;
      auto tup = make(ExprKind::kTuple, line);
      tup->items.push_back(std::move(first));
      while (skip_op(",")) {
        if (is_op(")")) break;
        tup->items.push_back(parse_expr(true));
      }
      expect_op(")");
      return seal(std::move(tup));
    }
    if (skip_op("[")) {
      auto e = make(ExprKind::kList, line);
      while (!skip_op("]")) {
        if (!e->items.empty()) expect_op(",");
        if (skip_op("]")) break;
        e->items.push_back(parse_expr(true));
      }
      return seal(std::move(e));
    }
    if (skip_op("{")) {
      auto e = make(ExprKind::kDict, line);
      while (!skip_op("}")) {
        if (!e->items.empty()) expect_op(",");
        if (skip_op("}")) break;
        e->items.push_back(parse_expr(true));
        expect_op(":");
        e->items.push_back(parse_expr(true));
      }
      return seal(std::move(e));
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        const int line = cur().line;
        next();
        if (cur().type == Tok::kInt) {
          auto e = make(ExprKind::kGetitem, line);
          e->a = std::move(node);
          e->b = make(ExprKind::kLiteral, line);
          e->b->value = Value::integer(cur().i);
          next();
          node = seal(std::move(e));
        } else {
          auto e = make(ExprKind::kGetattr, line);
          e->a = std::move(node);
          e->name = expect_name();
          node = seal(std::move(e));
        }
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node), ExprKind::kCall);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const int line = cur().line;
    expect_op("[");
    if (skip_op("]")) {
      // x[] subscripts with an empty tuple, as jinja2 parses it.
      auto e = make(ExprKind::kGetitem, line);
      e->a = std::move(node);
      e->b = make(ExprKind::kTuple, line);
      return seal(std::move(e));
    }
    ExprPtr start, stop, step;
    bool slice = false;
    if (!is_op(":")) start = parse_expr(true);
    if (skip_op(":")) {
      slice = true;
      if (!is_op("]") && !is_op(":")) stop = parse_expr(true);
      if (skip_op(":")) {
        if (!is_op("]")) step = parse_expr(true);
      }
    }
    expect_op("]");
    if (!slice) {
      auto e = make(ExprKind::kGetitem, line);
      e->a = std::move(node);
      e->b = std::move(start);
      return seal(std::move(e));
    }
    auto e = make(ExprKind::kSlice, line);
    e->a = std::move(node);
    e->b = std::move(start);
    e->c = std::move(stop);
    e->items.push_back(std::move(step));
    return seal(std::move(e));
  }

  // Parses "(args)" into e->items / e->kwargs.
  void parse_args(Expr* e) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (skip_op(")")) break;
      if (is_op("*") || is_op("**")) syntax_error(cur().line, "*args and **kwargs are not supported");
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string k = cur().text;
        next();
        next();
        e->kwargs.emplace_back(std::move(k), parse_expr(true));
      } else {
        if (!e->kwargs.empty()) syntax_error(cur().line, "positional argument after keyword argument");
        e->items.push_back(parse_expr(true));
      }
    }
  }

  ExprPtr parse_call(ExprPtr node, ExprKind kind) {
    auto e = make(kind, cur().line);
    e->a = std::move(node);
    parse_args(e.get());
    return seal(std::move(e));
  }

  ExprPtr parse_filter_one(ExprPtr base) {
    const int line = cur().line;
    auto e = make(ExprKind::kFilter, line);
    e->a = std::move(base);
    e->name = expect_name();
    while (skip_op(".")) e->name += "." + expect_name();
    if (is_op("(")) parse_args(e.get());
    return seal(std::move(e));
  }

  // `| f | g(...)` applied to base (null base: a filter block's body).
  ExprPtr parse_filter_chain(ExprPtr base, bool first_without_bar = false) {
    if (first_without_bar) base = parse_filter_one(std::move(base));
    while (skip_op("|")) base = parse_filter_one(std::move(base));
    return base;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        node = parse_filter_one(std::move(node));
      } else if (is_name("is")) {
        const int line = cur().line;
        next();
        auto e = make(ExprKind::kTest, line);
        e->negate = skip_name("not");
        e->name = expect_name();
        while (skip_op(".")) e->name += "." + expect_name();
        e->a = std::move(node);
        if (is_op("(")) {
          parse_args(e.get());
        } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                    cur().type == Tok::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) syntax_error(cur().line, "you cannot chain multiple tests with is");
          e->items.push_back(parse_postfix(parse_primary()));
        }
        node = seal(std::move(e));
      } else if (is_op("(")) {
        node = parse_call(std::move(node), ExprKind::kCall);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

std::unique_ptr<Program> parse_program(std::vector<Token> tokens) { return Parser(std::move(tokens)).run(); }

}  // namespace sn::engine::jinja
