// Python semantics of the interpreter's values: truthiness, equality, str()/repr(),
// json.dumps(), the UTF-8 helpers behind code-point indexing, and the render budget.
// See value.h.
#include "jinja/value.h"

#include <string.h>  // memmem (GNU)

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sn::engine::jinja {

void fail(const std::string& msg) { throw JinjaError(JinjaError::Kind::kTemplate, msg); }
void fail_type(const std::string& msg) { fail("TypeError: " + msg); }
void fail_limit(const std::string& msg) { throw JinjaError(JinjaError::Kind::kLimit, msg); }

// ----- budget -----

namespace {
thread_local Budget* t_budget = nullptr;
}  // namespace

BudgetScope::BudgetScope(Budget* budget) : saved_(t_budget) { t_budget = budget; }
BudgetScope::~BudgetScope() { t_budget = saved_; }

void budget_step(uint64_t n) {
  Budget* b = t_budget;
  if (b == nullptr) return;
  b->steps += n;
  if (b->steps > b->max_steps) {
    fail_limit("the template took more than " + std::to_string(b->max_steps) + " steps (max_steps)");
  }
}

void budget_scan(size_t bytes) {
  if (bytes >= kBytesPerStep) budget_step(bytes / kBytesPerStep);
}

void budget_check_size(size_t bytes, const char* what) {
  const Budget* b = t_budget;
  if (b == nullptr || bytes <= b->max_value_bytes) return;
  fail_limit(std::string(what) + " would be " + std::to_string(bytes) + " bytes, more than the " +
             std::to_string(b->max_value_bytes) + " one value may hold (max_value_bytes)");
}

void budget_allocate(size_t bytes, const char* what) {
  Budget* b = t_budget;
  if (b == nullptr) return;
  budget_check_size(bytes, what);
  b->alloc_bytes += bytes;  // bytes <= max_value_bytes: cannot wrap
  if (b->alloc_bytes > b->max_alloc_bytes) {
    fail_limit(std::string(what) + ": the template created more than " + std::to_string(b->max_alloc_bytes) +
               " bytes of values in total (max_alloc_bytes)");
  }
  budget_scan(bytes);
}

void budget_check_depth(uint32_t depth, const char* what) {
  if (t_budget == nullptr || depth <= kMaxValueDepth) return;
  fail_limit(std::string(what) + ": values nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

size_t size_add(size_t a, size_t b, const char* what) {
  size_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) fail_limit(std::string(what) + ": the result's size overflows");
  return r;
}

size_t size_mul(size_t a, size_t b, const char* what) {
  size_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail_limit(std::string(what) + ": the result's size overflows");
  return r;
}

size_t value_bytes(const Value& v) {
  switch (v.kind) {
    case Kind::kList:
    case Kind::kTuple: {
      size_t n = 0;
      for (const Value& x : *v.list) n += sizeof(Value) + x.s.size();
      return n;
    }
    case Kind::kDict: {
      size_t n = 0;
      for (const auto& kv : v.dict->items) n += 2 * sizeof(Value) + kv.first.s.size() + kv.second.s.size();
      return n;
    }
    default: return v.s.size();
  }
}

size_t str_find(std::string_view hay, std::string_view needle, size_t from) {
  if (from > hay.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  const size_t m = needle.size();
  // glibc's memmem is linear (two-way), but the caller may search a long text for many
  // close matches (split, replace, count): search growing windows, so that a call costs
  // about the distance to the match (sanitizers check the whole range memmem is given).
  size_t pos = from;
  size_t window = std::max<size_t>(4 * m, 256);
  while (hay.size() - pos >= m) {
    const size_t len = std::min(hay.size() - pos, window);
    const void* p = m == 1 ? std::memchr(hay.data() + pos, needle[0], len) : memmem(hay.data() + pos, len, needle.data(), m);
    if (p != nullptr) {
      const size_t at = static_cast<size_t>(static_cast<const char*>(p) - hay.data());
      budget_scan(at + m - from);
      return at;
    }
    if (len == hay.size() - pos) break;
    pos += len - (m - 1);  // a match straddling the window's end starts in the next one
    window *= 2;
  }
  budget_scan(hay.size() - from);
  return std::string_view::npos;
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::kNone;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::kBool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::kInt;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::kFloat;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  budget_allocate(x.size(), "a string");
  Value v;
  v.kind = Kind::kString;
  v.s = std::move(x);
  return v;
}
Value Value::make_list(List x) {
  Value v;
  v.kind = Kind::kList;
  uint32_t depth = 0;
  size_t bytes = 0;
  for (const Value& e : x) {
    depth = std::max(depth, e.depth);
    bytes += sizeof(Value) + e.s.size();
  }
  v.depth = depth + 1;
  budget_check_depth(v.depth, "a list");
  budget_allocate(bytes, "a list");
  v.list = std::make_shared<List>(std::move(x));
  return v;
}
Value Value::make_tuple(List x) {
  Value v = make_list(std::move(x));
  v.kind = Kind::kTuple;
  return v;
}
Value Value::make_dict() {
  Value v;
  v.kind = Kind::kDict;
  v.depth = 1;
  v.dict = std::make_shared<Dict>();
  return v;
}
Value Value::make_dict(std::vector<std::pair<Value, Value>> items) {
  Value v = make_dict();
  uint32_t depth = 0;
  for (const auto& kv : items) depth = std::max({depth, kv.first.depth, kv.second.depth});
  v.depth = depth + 1;
  v.dict->items = std::move(items);
  budget_check_depth(v.depth, "a dict");
  budget_allocate(value_bytes(v), "a dict");
  return v;
}

Value make_callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind = Kind::kCallable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

const Value* Dict::find(const Value& key) const {
  for (const auto& kv : items) {
    if (equals(kv.first, key)) return &kv.second;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  budget_step(1 + items.size() / 16);
  for (const auto& kv : items) {
    if (kv.first.kind == Kind::kString && kv.first.s == key) return &kv.second;
  }
  return nullptr;
}

void Dict::set(const Value& key, Value v) {
  for (auto& kv : items) {
    if (equals(kv.first, key)) {
      kv.second = std::move(v);
      return;
    }
  }
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  if (index < pos.size()) return &pos[index];
  for (const auto& kv : kw) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return v.b;
    case Kind::kInt: return v.i != 0;
    case Kind::kFloat: return v.f != 0;
    case Kind::kString: return !v.s.empty();
    case Kind::kList:
    case Kind::kTuple: return !v.list->empty();
    case Kind::kDict: return !v.dict->items.empty();
    default: return true;
  }
}

bool equals(const Value& a, const Value& b) {
  budget_step();
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) {
      const double x = a.kind == Kind::kFloat ? a.f : (a.kind == Kind::kBool ? a.b : static_cast<double>(a.i));
      const double y = b.kind == Kind::kFloat ? b.f : (b.kind == Kind::kBool ? b.b : static_cast<double>(b.i));
      return x == y;
    }
    const int64_t x = a.kind == Kind::kBool ? a.b : a.i;
    const int64_t y = b.kind == Kind::kBool ? b.b : b.i;
    return x == y;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString:
      if (a.s.size() != b.s.size()) return false;
      budget_scan(a.s.size());
      return a.s == b.s;
    case Kind::kList:
    case Kind::kTuple: {
      if (a.list == b.list) return true;  // shared: no need to walk it
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& kv : a.dict->items) {
        const Value* o = b.dict->find(kv.first);
        if (o == nullptr || !equals(kv.second, *o)) return false;
      }
      return true;
    }
    case Kind::kCallable: return a.fn == b.fn;
    case Kind::kObject: return a.obj == b.obj;
    default: return false;
  }
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kCallable: return "function";
    case Kind::kObject: return v.obj->type_name.c_str();
  }
  return "object";
}

void fail_undefined(const Value& v) {
  fail("UndefinedError: " + (v.s.empty() ? std::string("value is undefined") : v.s));
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  // buf is [-]d.ddde[+-]XX; split into digits and exponent.
  std::string s(buf);
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    s.erase(0, 1);
  }
  const size_t e = s.find('e');
  const int exp = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (size_t k = 0; k < e; ++k) {
    if (s[k] != '.') digits += s[k];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -5 + 1 && exp < 16) {
    if (exp >= 0) {
      if (static_cast<int>(digits.size()) <= exp + 1) {
        out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
      }
    } else {
      out += "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return out;
}

namespace {

bool py_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return false;
  if (c == 0xa0 || c == 0xad || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
      (c >= 0x205f && c <= 0x206f) || c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) ||
      (c >= 0xd800 && c <= 0xf8ff) || (c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f ||
      c == 0x180e || (c >= 0xe0000 && c <= 0xe0fff) || c >= 0xf0000) {
    return false;
  }
  return true;
}

// Appends repr(s). Output grows by at most 10 bytes per code point; checked as it grows.
void str_repr_into(std::string& out, std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char q = has_single && !has_double ? '"' : '\'';
  out += q;
  size_t n = 0;
  for (char32_t c : utf8_decode(s)) {
    if ((++n & 4095) == 0) budget_check_size(out.size(), "repr() of a string");
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!py_printable(c)) {
      char buf[16];
      if (c < 0x100) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out += q;
  budget_check_size(out.size(), "repr() of a string");
}

void str_into(std::string& out, const Value& v, uint32_t level);

// Appends repr(v). `level` counts the containers around v: namespaces can hold
// themselves, so the recursion is bounded here rather than by the values' depth.
void repr_into(std::string& out, const Value& v, uint32_t level) {
  if (level > kMaxValueDepth) {
    fail_limit("str() of a value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  }
  budget_step();
  switch (v.kind) {
    case Kind::kString: str_repr_into(out, v.s); return;
    case Kind::kUndefined: out += "Undefined"; return;
    case Kind::kList:
    case Kind::kTuple: {
      const bool tuple = v.kind == Kind::kTuple;
      out += tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        repr_into(out, (*v.list)[k], level + 1);
        budget_check_size(out.size(), "str() of a list");
      }
      if (tuple && v.list->size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return;
    }
    case Kind::kDict: {
      out += "{";
      bool first = true;
      for (const auto& kv : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, kv.first, level + 1);
        out += ": ";
        repr_into(out, kv.second, level + 1);
        budget_check_size(out.size(), "str() of a dict");
      }
      out += "}";
      return;
    }
    default: str_into(out, v, level);
  }
}

// Appends str(v).
void str_into(std::string& out, const Value& v, uint32_t level) {
  switch (v.kind) {
    case Kind::kUndefined: return;
    case Kind::kNone: out += "None"; return;
    case Kind::kBool: out += v.b ? "True" : "False"; return;
    case Kind::kInt: out += std::to_string(v.i); return;
    case Kind::kFloat: out += float_repr(v.f); return;
    case Kind::kString: out += v.s; return;
    case Kind::kCallable: out += "<function " + v.fn->name + ">"; return;
    case Kind::kObject: {
      if (v.obj->loop_items) {
        out += "<LoopContext " + std::to_string(v.obj->loop_index + 1) + "/" + std::to_string(v.obj->loop_items->size()) + ">";
        return;
      }
      Value d = Value::make_dict();
      d.dict->items = v.obj->attrs.items;
      out += "<" + v.obj->type_name + " ";
      repr_into(out, d, level + 1);
      out += ">";
      return;
    }
    default: repr_into(out, v, level);
  }
}

}  // namespace

std::string repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

std::string to_str(const Value& v) {
  if (v.kind == Kind::kString) return v.s;
  std::string out;
  str_into(out, v, 0);
  return out;
}

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t n = 0;
  for (char32_t c : utf8_decode(s)) {
    if ((++n & 4095) == 0) budget_check_size(out.size(), "tojson");
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char buf[16];
        if (c < 0x20 || (ensure_ascii && c >= 0x7f)) {
          if (c >= 0x10000) {
            const char32_t u = c - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (u >> 10)),
                          static_cast<unsigned>(0xdc00 + (u & 0x3ff)));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          utf8_append(out, c);
        }
      }
    }
  }
  out += '"';
  budget_check_size(out.size(), "tojson");
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return float_repr(d);
}

void json_value(std::string& out, const Value& v, const JsonOptions& opt, int level) {
  if (level > 512) fail("ValueError: tojson: nesting too deep");
  budget_step();
  auto newline = [&](int lvl) {
    // The indent is the template's to choose: size the line before writing it.
    budget_check_size(size_add(out.size(), size_mul(opt.indent->size(), static_cast<size_t>(lvl), "tojson indent") + 1,
                               "tojson indent"),
                      "tojson");
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *opt.indent;
  };
  switch (v.kind) {
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += v.b ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(v.i); return;
    case Kind::kFloat: out += json_float(v.f); return;
    case Kind::kString: json_string(out, v.s, opt.ensure_ascii); return;
    case Kind::kList:
    case Kind::kTuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += opt.item_sep;
        if (opt.indent) newline(level + 1);
        json_value(out, (*v.list)[k], opt, level + 1);
        budget_check_size(out.size(), "tojson");
      }
      if (opt.indent) newline(level);
      out += ']';
      return;
    }
    case Kind::kDict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      auto key_text = [](const Value& k) -> std::string {
        switch (k.kind) {
          case Kind::kString: return k.s;
          case Kind::kInt: return std::to_string(k.i);
          case Kind::kFloat: return json_float(k.f);
          case Kind::kBool: return k.b ? "true" : "false";
          case Kind::kNone: return "null";
          default: fail_type(std::string("keys must be str, int, float, bool or None, not ") + type_name(k));
        }
      };
      if (opt.sort_keys) {
        std::stable_sort(items.begin(), items.end(), [&](const auto* a, const auto* b) {
          budget_step();
          return key_text(a->first) < key_text(b->first);
        });
      }
      out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += opt.item_sep;
        first = false;
        if (opt.indent) newline(level + 1);
        json_string(out, key_text(kv->first), opt.ensure_ascii);
        out += opt.key_sep;
        json_value(out, kv->second, opt, level + 1);
        budget_check_size(out.size(), "tojson");
      }
      if (opt.indent) newline(level);
      out += '}';
      return;
    }
    default: fail_type(std::string("Object of type ") + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string json_dumps(const Value& v, const JsonOptions& opt) {
  std::string out;
  json_value(out, v, opt, 0);
  return out;
}

std::u32string utf8_decode(std::string_view s) {
  // Decoding, and the per-character work its callers do, costs more than copying.
  budget_scan(s.size() * 4);
  std::u32string out;
  out.reserve(s.size());
  size_t k = 0;
  while (k < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    int len = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && k + len <= s.size();
    for (int j = 1; ok && j < len; ++j) {
      const unsigned char cc = static_cast<unsigned char>(s[k + j]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!ok) {
      out += U'\uFFFD';
      ++k;
      continue;
    }
    out += cp;
    k += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

size_t utf8_length(std::string_view s) {
  budget_scan(s.size());
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  }
  return n;
}

bool is_py_space(char32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string py_strip(std::string_view s, const std::u32string* chars, bool left, bool right) {
  // Fast path for ASCII-only edges is not worth it; templates strip short strings.
  const std::u32string u = utf8_decode(s);
  // A long `chars` is searched as a sorted set, so that stripping stays linear.
  std::u32string sorted;
  if (chars && chars->size() > 16) {
    sorted = *chars;
    std::sort(sorted.begin(), sorted.end());
  }
  auto strip_it = [&](char32_t c) {
    if (!sorted.empty()) return std::binary_search(sorted.begin(), sorted.end(), c);
    return chars ? chars->find(c) != std::u32string::npos : is_py_space(c);
  };
  size_t b = 0, e = u.size();
  if (left) {
    while (b < e && strip_it(u[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(u[e - 1])) --e;
  }
  return utf8_encode(std::u32string_view(u).substr(b, e - b));
}

char32_t py_lower_cp(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return (c % 2 == 0 && c != 0x130) ? c + 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return c % 2 == 1 ? c + 1 : c;
  if (c == 0x178) return 0xff;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  if (c == 0x386) return 0x3ac;
  if (c >= 0x388 && c <= 0x38a) return c + 37;
  if (c == 0x38c) return 0x3cc;
  if (c == 0x38e || c == 0x38f) return c + 63;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f)) return c % 2 == 0 ? c + 1 : c;
  if (c >= 0xff21 && c <= 0xff3a) return c + 32;
  return c;
}

char32_t py_upper_cp(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 32;
  if (c == 0xb5) return 0x39c;
  if (c == 0xff) return 0x178;
  if (c == 0x131) return 'I';
  if (c == 0x17f) return 'S';
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return (c % 2 == 1 && c != 0x131) ? c - 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return c % 2 == 0 ? c - 1 : c;
  if (c == 0x3c2) return 0x3a3;
  if (c >= 0x3b1 && c <= 0x3c9) return c - 32;
  if (c == 0x3ac) return 0x386;
  if (c >= 0x3ad && c <= 0x3af) return c - 37;
  if (c == 0x3cc) return 0x38c;
  if (c == 0x3cd || c == 0x3ce) return c - 63;
  if (c >= 0x430 && c <= 0x44f) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f)) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0xff41 && c <= 0xff5a) return c - 32;
  return c;
}

bool py_is_cased(char32_t c) {
  return py_lower_cp(c) != c || py_upper_cp(c) != c || c == 0xdf || c == 0x130 || c == 0x3c2 || c == 0x138 ||
         c == 0x149;
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t n = 0;
  for (char32_t c : utf8_decode(s)) {
    if ((++n & 4095) == 0) budget_check_size(out.size(), "upper()");
    if (c == 0xdf) {
      out += "SS";
    } else if (c == 0x149) {
      out += "\xca\xbcN";  // U+02BC U+004E
    } else {
      utf8_append(out, py_upper_cp(c));
    }
  }
  return out;
}

std::string py_lower(std::string_view s) {
  const std::u32string u = utf8_decode(s);
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < u.size(); ++k) {
    if ((k & 4095) == 4095) budget_check_size(out.size(), "lower()");
    const char32_t c = u[k];
    if (c == 0x130) {
      out += "i\xcc\x87";  // i + U+0307 COMBINING DOT ABOVE
    } else if (c == 0x3a3) {
      // Final sigma: after a cased letter and not before one.
      const bool after = k > 0 && py_is_cased(u[k - 1]);
      const bool before = k + 1 < u.size() && py_is_cased(u[k + 1]);
      utf8_append(out, after && !before ? 0x3c2 : 0x3c3);
    } else {
      utf8_append(out, py_lower_cp(c));
    }
  }
  return out;
}

}  // namespace sn::engine::jinja
