// The tree-walking evaluator of the Jinja2 subset (see interpreter.h): statements,
// expressions with Python's operator semantics, scoping as jinja2 compiles it (each loop
// iteration and macro call gets its own frame; `set` writes the innermost frame),
// filters, tests and the whitelisted str/dict/list methods.
// Every operation whose cost grows with a value the template controls charges the
// render's Budget (value.h) before it allocates, and integer arithmetic is checked:
// templates are untrusted, and Python's unbounded ints become a clean OverflowError.
#include "jinja/interpreter.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>

namespace sn::engine::jinja {
namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  // Lookups are linear: a template of many distinct names pays for them.
  const Value* find(const std::string& name) const {
    size_t scanned = 0;
    const Value* found = nullptr;
    for (const Frame* f = this; f != nullptr && found == nullptr; f = f->parent.get()) {
      for (const auto& kv : f->vars) {
        ++scanned;
        if (kv.first == name) {
          found = &kv.second;
          break;
        }
      }
    }
    budget_step(scanned / 16);
    return found;
  }
  // A variable keeps its own copy of a string: charged like a new value.
  void set(const std::string& name, Value v) {
    budget_step(vars.size() / 16);
    budget_allocate(v.s.size(), "a variable");
    for (auto& kv : vars) {
      if (kv.first == name) {
        kv.second = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { kNormal, kBreak, kContinue };

struct MacroClosure {
  FramePtr frame;
};

// Python's ints are unbounded; ours are 64-bit, and leaving that range is an error
// (never undefined behaviour).
[[noreturn]] void fail_overflow(const char* op) {
  fail(std::string("OverflowError: integer overflow in '") + op + "' (results beyond 64 bits are not supported)");
}
int64_t checked_add(int64_t x, int64_t y, const char* op) {
  int64_t z = 0;
  if (__builtin_add_overflow(x, y, &z)) fail_overflow(op);
  return z;
}
int64_t checked_sub(int64_t x, int64_t y, const char* op) {
  int64_t z = 0;
  if (__builtin_sub_overflow(x, y, &z)) fail_overflow(op);
  return z;
}
int64_t checked_mul(int64_t x, int64_t y, const char* op) {
  int64_t z = 0;
  if (__builtin_mul_overflow(x, y, &z)) fail_overflow(op);
  return z;
}
// x ** y for y >= 0 by squaring: O(log y) steps, so `1 ** 10**18` is instant. Every
// intermediate is a factor of the result, so an overflow means the result overflows.
int64_t checked_pow(int64_t base, int64_t ex) {
  int64_t z = 1;
  while (ex > 0) {
    if (ex & 1) z = checked_mul(z, base, "**");
    ex >>= 1;
    if (ex > 0) base = checked_mul(base, base, "**");
  }
  return z;
}
// Python's floor division (x // y) or modulo (x % y, the sign of the divisor).
int64_t floor_div_or_mod(int64_t x, int64_t y, bool mod) {
  if (y == 0) fail("ZeroDivisionError: integer division or modulo by zero");
  if (y == -1) return mod ? 0 : checked_sub(0, x, "//");  // INT64_MIN / -1 overflows in C++
  int64_t q = x / y, m = x % y;
  if (m != 0 && ((m < 0) != (y < 0))) {
    --q;
    m += y;
  }
  return mod ? m : q;
}
// int(f) for a finite float; Python would give a big int where we cannot.
int64_t float_to_int(double f) {
  if (std::isnan(f)) fail("ValueError: cannot convert float NaN to integer");
  if (std::isinf(f)) fail("OverflowError: cannot convert float infinity to integer");
  if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) {
    fail("OverflowError: int too large to convert (results beyond 64 bits are not supported)");
  }
  return static_cast<int64_t>(f);
}
// A decimal string of digits as an int64; nullopt when it does not fit.
std::optional<int64_t> parse_digits(const std::string& digits) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(digits.c_str(), &end, 10);
  if (errno == ERANGE || end == digits.c_str() || *end != '\0') return std::nullopt;
  return v;
}

// An error at a known line (0: unknown; the enclosing statement adds its line).
[[noreturn]] void fail_at(int line, const std::string& msg) {
  if (line <= 0) fail(msg);
  throw JinjaError(JinjaError::Kind::kTemplate, msg + " (line " + std::to_string(line) + ")", line);
}

int64_t as_int(const Value& v, const char* what) {
  if (v.kind == Kind::kInt) return v.i;
  if (v.kind == Kind::kBool) return v.b;
  if (v.is_undefined()) fail_undefined(v);
  fail_type(std::string(what) + " must be an integer, not '" + type_name(v) + "'");
}

double as_double(const Value& v) {
  if (v.kind == Kind::kFloat) return v.f;
  if (v.kind == Kind::kInt) return static_cast<double>(v.i);
  if (v.kind == Kind::kBool) return v.b;
  fail_type(std::string("must be real number, not ") + type_name(v));
}

std::string str_upper(const std::string& s) { return py_upper(s); }
std::string str_lower(const std::string& s) { return py_lower(s); }

// The items of `v` as a for loop sees them: a copy, charged to the budget (iterating a
// 16 MiB string makes 16 Mi one-character values).
std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return {};
    case Kind::kList:
    case Kind::kTuple: budget_allocate(value_bytes(v), "iterating a list"); return *v.list;
    case Kind::kDict: {
      size_t bytes = 0;
      for (const auto& kv : v.dict->items) bytes += sizeof(Value) + kv.first.s.size();
      budget_allocate(bytes, "iterating a dict");
      std::vector<Value> out;
      for (const auto& kv : v.dict->items) out.push_back(kv.first);
      return out;
    }
    case Kind::kString: {
      budget_allocate(size_mul(utf8_length(v.s), sizeof(Value), "iterating a string"), "iterating a string");
      std::vector<Value> out;
      for (char32_t c : utf8_decode(v.s)) {
        std::string ch;
        utf8_append(ch, c);
        out.push_back(Value::string(std::move(ch)));
      }
      return out;
    }
    default: fail_type(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(utf8_length(v.s));
    case Kind::kList:
    case Kind::kTuple: return static_cast<int64_t>(v.list->size());
    case Kind::kDict: return static_cast<int64_t>(v.dict->items.size());
    case Kind::kObject: return static_cast<int64_t>(v.obj->attrs.items.size());
    default: fail_type(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

// Python's ordering for sort/min/max and the < > operators.
int compare(const Value& a, const Value& b, bool case_sensitive = true, uint32_t level = 0) {
  if (level > kMaxValueDepth) fail_limit("comparing values nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  budget_step();
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::kFloat || b.kind == Kind::kFloat) {
      const double x = as_double(a), y = as_double(b);
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = as_int(a, "operand"), y = as_int(b, "operand");
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    budget_scan(std::min(a.s.size(), b.s.size()));
    if (case_sensitive) return a.s.compare(b.s) < 0 ? -1 : (a.s == b.s ? 0 : 1);
    const std::string x = str_lower(a.s), y = str_lower(b.s);
    return x < y ? -1 : (x == y ? 0 : 1);
  }
  if (a.kind == b.kind && a.is_seq()) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      if (!equals((*a.list)[k], (*b.list)[k])) return compare((*a.list)[k], (*b.list)[k], case_sensitive, level + 1);
    }
    return a.list->size() < b.list->size() ? -1 : (a.list->size() == b.list->size() ? 0 : 1);
  }
  fail_type(std::string("'<' not supported between instances of '") + type_name(a) + "' and '" + type_name(b) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (!item.is_string()) {
        if (item.is_undefined()) fail_undefined(item);
        fail_type(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      }
      return str_find(container.s, item.s) != std::string::npos;
    case Kind::kList:
    case Kind::kTuple:
      for (const Value& v : *container.list) {
        if (equals(v, item)) return true;
      }
      return false;
    case Kind::kDict: return container.dict->find(item) != nullptr;
    default: fail_type(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

// Python slice semantics over n elements: `count` indices from `first`, `step` apart.
struct SliceRange {
  int64_t first = 0;
  int64_t step = 1;
  size_t count = 0;
  template <typename F>
  void each(F f) const {
    int64_t k = first;
    for (size_t i = 0; i < count; ++i) {
      f(static_cast<size_t>(k));
      if (i + 1 < count) k += step;  // never past the last index, so it cannot overflow
    }
  }
};

SliceRange slice_range(int64_t n, const Value& start, const Value& stop, const Value& step) {
  auto given = [](const Value& v) {
    if (v.is_none()) return false;
    if (v.kind != Kind::kInt && v.kind != Kind::kBool) fail_type("slice indices must be integers or None or have an __index__ method");
    return true;
  };
  const int64_t st = given(step) ? as_int(step, "slice step") : 1;
  if (st == 0) fail("ValueError: slice step cannot be zero");
  // Negative indices count from the end; the result is clamped to the valid range for
  // the step's direction, as CPython's PySlice_AdjustIndices does.
  auto norm = [&](const Value& v, int64_t def) -> int64_t {
    if (!given(v)) return def;
    int64_t x = as_int(v, "slice index");
    if (x < 0) x += n;
    return st > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
  };
  SliceRange r;
  r.first = norm(start, st > 0 ? 0 : n - 1);
  r.step = st;
  const int64_t e = norm(stop, st > 0 ? n : -1);
  // first and e lie in [-1, n]: the differences fit; the step may not fit its negation.
  if (st > 0 && r.first < e) {
    r.count = static_cast<size_t>((static_cast<uint64_t>(e - r.first) - 1) / static_cast<uint64_t>(st) + 1);
  } else if (st < 0 && r.first > e) {
    r.count = static_cast<size_t>((static_cast<uint64_t>(r.first - e) - 1) / (0 - static_cast<uint64_t>(st)) + 1);
  }
  return r;
}

// Pieces of a split become values of sizeof(Value) each: bound their number as they come.
void check_pieces(size_t pieces, size_t source_bytes, const char* what) {
  budget_check_size(size_add(size_mul(pieces, sizeof(Value), what), source_bytes, what), what);
}

std::vector<std::string> py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep == nullptr || sep->is_none()) {
    const std::u32string u = utf8_decode(s);
    size_t k = 0;
    while (true) {
      while (k < u.size() && is_py_space(u[k])) ++k;
      if (k >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = u.size();
        while (e > k && is_py_space(u[e - 1])) --e;
        out.push_back(utf8_encode(std::u32string_view(u).substr(k, e - k)));
        break;
      }
      size_t e = k;
      while (e < u.size() && !is_py_space(u[e])) ++e;
      out.push_back(utf8_encode(std::u32string_view(u).substr(k, e - k)));
      check_pieces(out.size(), s.size(), "split()");
      k = e;
    }
    return out;
  }
  if (!sep->is_string()) fail_type(std::string("must be str or None, not ") + type_name(*sep));
  if (sep->s.empty()) fail("ValueError: empty separator");
  size_t k = 0;
  while (true) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) break;
    const size_t f = str_find(s, sep->s, k);
    if (f == std::string::npos) break;
    out.push_back(s.substr(k, f - k));
    check_pieces(out.size(), s.size(), "split()");
    k = f + sep->s.size();
  }
  out.push_back(s.substr(k));
  return out;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  const std::u32string u = utf8_decode(s);
  std::vector<std::string> out;
  size_t k = 0, start = 0;
  while (k < u.size()) {
    const char32_t c = u[k];
    const bool brk = c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++k;
      continue;
    }
    size_t e = k + 1;
    if (c == '\r' && e < u.size() && u[e] == '\n') ++e;
    out.push_back(utf8_encode(std::u32string_view(u).substr(start, (keepends ? e : k) - start)));
    check_pieces(out.size(), s.size(), "splitlines()");
    k = start = e;
  }
  if (start < u.size()) out.push_back(utf8_encode(std::u32string_view(u).substr(start)));
  return out;
}

// str.title(): a cased letter after a cased letter is lowered, any other is raised.
std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  size_t n = 0;
  for (char32_t c : utf8_decode(s)) {
    if ((++n & 4095) == 0) budget_check_size(out.size(), "title()");
    const bool cased = py_is_cased(c);
    if (cased) {
      if (prev_cased) utf8_append(out, py_lower_cp(c));
      else if (c == 0xdf) out += "Ss";
      else utf8_append(out, py_upper_cp(c));
    } else {
      utf8_append(out, c);
    }
    prev_cased = cased;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  const std::u32string u = utf8_decode(s);
  if (u.empty()) return "";
  std::string out = u[0] == 0xdf ? std::string("Ss") : std::string();
  if (out.empty()) utf8_append(out, py_upper_cp(u[0]));
  return out + py_lower(utf8_encode(std::u32string_view(u).substr(1)));
}

// The result's size is computed (with overflow checks) before it is built: replacing
// with a longer string multiplies the input.
std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  uint64_t hits = 0;
  if (from.empty()) {
    hits = utf8_length(s) + 1;
  } else {
    for (size_t k = str_find(s, from); k != std::string::npos && (count < 0 || hits < static_cast<uint64_t>(count));
         k = str_find(s, from, k + from.size())) {
      ++hits;
    }
  }
  if (count >= 0) hits = std::min<uint64_t>(hits, static_cast<uint64_t>(count));
  const size_t removed = static_cast<size_t>(hits) * from.size();  // <= s.size()
  const size_t size = size_add(s.size() - removed, size_mul(static_cast<size_t>(hits), to.size(), "replace()"), "replace()");
  budget_check_size(size, "replace()");
  out.reserve(size);
  if (from.empty()) {
    // Python inserts `to` between every code point (and at both ends).
    const std::u32string u = utf8_decode(s);
    int64_t n = 0;
    for (char32_t c : u) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      utf8_append(out, c);
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t k = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t f = str_find(s, from, k);
    if (f == std::string::npos) break;
    out.append(s, k, f - k);
    out += to;
    k = f + from.size();
    ++n;
  }
  out.append(s, k, std::string::npos);
  return out;
}

// printf-style `"%s" % x` for the common conversions. A width or precision is the
// template's to choose: it is bounded like any value's size before snprintf sees it.
std::string py_percent_format(const std::string& fmt, const Value& args) {
  const std::vector<Value> one{args};
  const std::vector<Value>& list = args.kind == Kind::kTuple ? *args.list : one;
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    ++k;
    if (k >= fmt.size()) fail("ValueError: incomplete format");
    std::string spec = "%";
    size_t number = 0;  // the width or precision being read
    while (k < fmt.size() && std::strchr("-+ #0123456789.", fmt[k])) {
      const char ch = fmt[k++];
      spec += ch;
      if (ch >= '0' && ch <= '9') {
        number = size_add(size_mul(number, 10, "'%' format width"), static_cast<size_t>(ch - '0'), "'%' format width");
        budget_check_size(number, "a '%' format width or precision");
      } else {
        number = 0;
      }
    }
    if (k >= fmt.size()) fail("ValueError: incomplete format");
    const char conv = fmt[k];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= list.size()) fail_type("not enough arguments for format string");
    const Value& v = list[next++];
    auto print = [&](const std::string& f, auto x) {
      const int n = std::snprintf(nullptr, 0, f.c_str(), x);
      if (n < 0) fail("ValueError: unsupported format '" + f + "'");
      const size_t at = out.size();
      budget_check_size(size_add(at, static_cast<size_t>(n), "'%' format"), "'%' format");
      out.resize(at + static_cast<size_t>(n) + 1);
      std::snprintf(out.data() + at, static_cast<size_t>(n) + 1, f.c_str(), x);
      out.resize(at + static_cast<size_t>(n));
    };
    switch (conv) {
      case 's': out += to_str(v); break;
      case 'r': out += repr(v); break;
      case 'd':
      case 'i':
        print(spec + "lld", static_cast<long long>(v.kind == Kind::kFloat ? float_to_int(v.f) : as_int(v, "%d format")));
        break;
      case 'x': print(spec + "llx", static_cast<long long>(as_int(v, "%x format"))); break;
      case 'f':
      case 'e':
      case 'g': print(spec + conv, as_double(v)); break;
      default: fail(std::string("ValueError: unsupported format character '") + conv + "'");
    }
    budget_check_size(out.size(), "'%' format");
  }
  if (next < list.size() && args.kind == Kind::kTuple) fail_type("not all arguments converted during string formatting");
  return out;
}

class Interpreter;
using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

class Interpreter {
 public:
  Interpreter(const std::tm& now, const RenderLimits& limits) : now_(now), limits_(limits) {}
  // Breaks the reference cycles a render can make: a macro's frame holds the macro, and a
  // namespace can hold itself (or a list, loop or macro that leads back to it). Every
  // cycle passes through one of these, and clearing them also cuts chains of nested
  // namespaces into pieces no deeper than kMaxValueDepth, so destroying them is bounded.
  ~Interpreter() {
    for (const auto& c : macro_closures_) c->frame.reset();
    for (const auto& o : namespaces_) o->attrs.items.clear();
  }
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  std::string run(const Program& p, const std::vector<std::pair<std::string, Value>>& variables) {
    auto root = std::make_shared<Frame>();
    install_globals(*root);
    for (const auto& kv : variables) root->set(kv.first, kv.second);
    auto top = std::make_shared<Frame>();
    top->parent = root;
    std::string out;
    exec(p.body, top, out);
    return out;
  }

  // ----- attribute and item access (the sandbox: data and whitelisted methods only) -----

  Value getattr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) fail_undefined(obj);
    if (Value m = method(obj, name); m.kind == Kind::kCallable) return m;
    if (obj.is_dict()) {
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
    } else if (obj.kind == Kind::kObject) {
      if (std::optional<Value> v = object_attr(*obj.obj, name)) return std::move(*v);
    }
    return missing(obj, name);
  }

  static std::optional<Value> object_attr(const Object& o, const std::string& name) {
    if (!o.loop_items) {
      if (const Value* v = o.attrs.find(std::string_view(name))) return *v;
      return std::nullopt;
    }
    const int64_t k = o.loop_index;
    const int64_t len = static_cast<int64_t>(o.loop_items->size());
    if (name == "index") return Value::integer(k + 1);
    if (name == "index0") return Value::integer(k);
    if (name == "revindex") return Value::integer(len - k);
    if (name == "revindex0") return Value::integer(len - k - 1);
    if (name == "first") return Value::boolean(k == 0);
    if (name == "last") return Value::boolean(k == len - 1);
    if (name == "length") return Value::integer(len);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem") {
      if (k > 0) return (*o.loop_items)[static_cast<size_t>(k - 1)];
      return Value::undefined("there is no previous item");
    }
    if (name == "nextitem") {
      if (k + 1 < len) return (*o.loop_items)[static_cast<size_t>(k + 1)];
      return Value::undefined("there is no next item");
    }
    if (name == "cycle") {
      return make_callable("cycle", [k](CallArgs& args) -> Value {
        if (args.pos.empty()) fail_type("no items for cycling given");
        return args.pos[static_cast<size_t>(k) % args.pos.size()];
      });
    }
    return std::nullopt;
  }

  Value getitem(const Value& obj, const Value& key) {
    if (obj.is_undefined()) fail_undefined(obj);
    if (obj.is_dict()) {
      if (const Value* v = obj.dict->find(key)) return *v;
    } else if (obj.is_seq() && (key.kind == Kind::kInt || key.kind == Kind::kBool)) {
      int64_t k = as_int(key, "index");
      const int64_t n = static_cast<int64_t>(obj.list->size());
      if (k < 0) k += n;
      if (k >= 0 && k < n) return (*obj.list)[static_cast<size_t>(k)];
    } else if (obj.is_string() && (key.kind == Kind::kInt || key.kind == Kind::kBool)) {
      const std::u32string u = utf8_decode(obj.s);
      int64_t k = as_int(key, "index");
      const int64_t n = static_cast<int64_t>(u.size());
      if (k < 0) k += n;
      if (k >= 0 && k < n) return Value::string(utf8_encode(std::u32string_view(u).substr(static_cast<size_t>(k), 1)));
    } else if (obj.kind == Kind::kObject && key.is_string()) {
      if (std::optional<Value> v = object_attr(*obj.obj, key.s)) return std::move(*v);
    }
    if (key.is_string()) {
      if (Value m = method(obj, key.s); m.kind == Kind::kCallable) return m;
    }
    return missing(obj, key.is_string() ? key.s : to_str(key));
  }

  static Value missing(const Value& obj, const std::string& name) {
    if (obj.is_none()) return Value::undefined("'None' has no attribute '" + name + "'");
    return Value::undefined("'" + std::string(obj.kind == Kind::kObject ? obj.obj->type_name.c_str() : type_name(obj)) +
                            " object' has no attribute '" + name + "'");
  }

  // Attribute lookup by a dotted path, as jinja2's make_attrgetter does (map, sort, ...).
  Value attr_path(const Value& item, const std::string& path) {
    budget_scan(path.size());  // parsed again for every item
    Value v = item;
    size_t k = 0;
    while (true) {
      const size_t dot = path.find('.', k);
      const std::string part = path.substr(k, dot == std::string::npos ? std::string::npos : dot - k);
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      // A number too large for an int64 is no index of anything: INT64_MAX finds nothing.
      v = getitem(v, digits ? Value::integer(parse_digits(part).value_or(INT64_MAX)) : Value::string(part));
      if (dot == std::string::npos) return v;
      k = dot + 1;
    }
  }

  Value method(const Value& obj, const std::string& name);

  // ----- calls -----

  Value call(const Value& callee, CallArgs& args) {
    budget_step();
    if (callee.kind == Kind::kCallable) return callee.fn->fn(args);
    if (callee.is_undefined()) fail_undefined(callee);
    fail_type(std::string("'") + type_name(callee) + "' object is not callable");
  }

  Value apply_filter(const std::string& name, const Value& v, CallArgs& args, int line);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args, int line);

  const RenderLimits& limits() const { return limits_; }

  // Bounds the nesting of statements, expressions and macro calls being evaluated, which
  // is what the C++ stack holds.
  class DepthGuard {
   public:
    explicit DepthGuard(Interpreter& in) : in_(in) {
      if (++in_.depth_ > in_.limits_.max_eval_depth) {
        --in_.depth_;
        fail_limit("evaluation nested deeper than " + std::to_string(in_.limits_.max_eval_depth) +
                   " levels (max_eval_depth)");
      }
    }
    ~DepthGuard() { --in_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Interpreter& in_;
  };

 private:
  void install_globals(Frame& g);
  Flow exec(const Body& body, const FramePtr& frame, std::string& out);
  Flow exec_node(const Node& n, const FramePtr& frame, std::string& out);
  [[gnu::noinline]] void exec_for(const Node& n, const FramePtr& frame, std::string& out);
  [[gnu::noinline]] void exec_block(const Node& n, const FramePtr& frame, std::string& out);
  [[gnu::noinline]] void define_macro(const Node& n, const FramePtr& frame);
  [[gnu::noinline]] Value call_macro(const Node& node, const FramePtr& closure_frame, CallArgs& args);
  std::shared_ptr<const std::vector<Value>> filtered_items(const Node& n, const Value& seq, const FramePtr& frame);
  void assign(const Expr& target, const Value& v, const FramePtr& frame);
  Value eval(const Expr& e, const FramePtr& frame);
  Value eval_node(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_display(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_access(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_slice(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_call(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_unary(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_compare(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value eval_binary(const Expr& e, const FramePtr& frame);
  [[gnu::noinline]] Value binary_op(const std::string& op, const Value& l, const Value& r);
  Value repeat(const Value& seq, int64_t n);
  CallArgs eval_args(const Expr& e, const FramePtr& frame) {
    CallArgs a;
    for (const auto& x : e.items) a.pos.push_back(eval(*x, frame));
    for (const auto& kv : e.kwargs) a.kw.emplace_back(kv.first, eval(*kv.second, frame));
    return a;
  }
  void append(std::string& out, std::string_view s) {
    if (out.size() + s.size() > limits_.max_output_bytes) {
      fail_limit("output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes (max_output_bytes)");
    }
    budget_scan(s.size());
    out.append(s);
  }
  void count_iteration() {
    budget_step();  // an iteration with an empty body still costs
    if (++iterations_ > limits_.max_loop_iterations) {
      fail_limit("more than " + std::to_string(limits_.max_loop_iterations) + " loop iterations (max_loop_iterations)");
    }
  }

  std::tm now_;
  RenderLimits limits_;
  uint64_t iterations_ = 0;
  int call_depth_ = 0;
  int depth_ = 0;  // see DepthGuard
  const Value* block_value_ = nullptr;  // the body of a {% filter %} block
  std::vector<std::shared_ptr<MacroClosure>> macro_closures_;
  std::vector<std::shared_ptr<Object>> namespaces_;  // every namespace() made; see ~Interpreter
};

// ----- statements -----

Flow Interpreter::exec(const Body& body, const FramePtr& frame, std::string& out) {
  for (const NodePtr& n : body) {
    Flow f;
    try {
      f = exec_node(*n, frame, out);
    } catch (JinjaError& e) {
      if (e.line == 0 && e.kind == JinjaError::Kind::kTemplate) {
        throw JinjaError(e.kind, std::string(e.what()) + " (line " + std::to_string(n->line) + ")", n->line);
      }
      if (e.line == 0) throw JinjaError(e.kind, e.what(), n->line);
      throw;
    }
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

// As with eval_node, the larger cases have functions of their own to keep this frame,
// which is on the recursive path of every statement, small.
Flow Interpreter::exec_node(const Node& n, const FramePtr& frame, std::string& out) {
  DepthGuard depth(*this);
  budget_step();
  switch (n.kind) {
    case NodeKind::kText: append(out, n.text); return Flow::kNormal;
    case NodeKind::kOutput: append(out, to_str(eval(*n.expr, frame))); return Flow::kNormal;
    case NodeKind::kIf:
      for (const auto& br : n.branches) {
        if (br.first == nullptr || truthy(eval(*br.first, frame))) return exec(br.second, frame, out);
      }
      return Flow::kNormal;
    case NodeKind::kFor: exec_for(n, frame, out); return Flow::kNormal;
    case NodeKind::kSet: assign(*n.target, eval(*n.expr, frame), frame); return Flow::kNormal;
    case NodeKind::kSetBlock:
    case NodeKind::kFilterBlock: exec_block(n, frame, out); return Flow::kNormal;
    case NodeKind::kMacro: define_macro(n, frame); return Flow::kNormal;
    case NodeKind::kWith: {
      auto f = std::make_shared<Frame>();
      f->parent = frame;
      for (const auto& p : n.params) f->set(p.first, eval(*p.second, frame));
      return exec(n.body, f, out);
    }
    case NodeKind::kBreak: return Flow::kBreak;
    case NodeKind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

// {% set x %}...{% endset %} and {% filter f %}...{% endfilter %}
void Interpreter::exec_block(const Node& n, const FramePtr& frame, std::string& out) {
  std::string body;
  exec(n.body, frame, body);
  Value v = Value::string(std::move(body));
  if (n.expr) {
    const Value* saved = block_value_;
    block_value_ = &v;
    Value r = eval(*n.expr, frame);
    block_value_ = saved;
    v = std::move(r);
  }
  if (n.kind == NodeKind::kSetBlock) {
    assign(*n.target, v, frame);
  } else {
    append(out, to_str(v));
  }
}

void Interpreter::define_macro(const Node& n, const FramePtr& frame) {
  const Node* node = &n;
  // The macro's frame holds the macro and the macro holds its frame: a cycle of
  // shared_ptrs, broken when the render ends (see ~Interpreter). Until then the closure
  // keeps the frame and what it holds.
  size_t kept = sizeof(MacroClosure) + sizeof(Frame);
  for (const auto& kv : frame->vars) kept += sizeof(kv) + kv.second.s.size();
  budget_allocate(kept, "a macro definition");
  auto closure = std::make_shared<MacroClosure>();
  closure->frame = frame;
  macro_closures_.push_back(closure);
  Interpreter* self = this;
  frame->set(n.text, make_callable(n.text, [self, node, closure](CallArgs& args) -> Value {
    return self->call_macro(*node, closure->frame, args);
  }));
}

Value Interpreter::call_macro(const Node& node, const FramePtr& closure_frame, CallArgs& args) {
  if (++call_depth_ > limits_.max_call_depth) {
    --call_depth_;
    fail_limit("macro calls nested deeper than " + std::to_string(limits_.max_call_depth) + " (max_call_depth)");
  }
  struct Leave {
    int& depth;
    ~Leave() { --depth; }
  } leave{call_depth_};
  budget_step(node.params.size() * args.kw.size() / 16);  // keyword arguments are matched by name
  auto f = std::make_shared<Frame>();
  f->parent = closure_frame;
  if (args.pos.size() > node.params.size()) {
    fail_type("macro '" + node.text + "' takes not more than " + std::to_string(node.params.size()) + " argument(s)");
  }
  for (size_t k = 0; k < node.params.size(); ++k) {
    const auto& p = node.params[k];
    const Value* given = args.get(k, p.first);
    if (given) {
      f->set(p.first, *given);
    } else if (p.second) {
      f->set(p.first, eval(*p.second, f));
    } else {
      f->set(p.first, Value::undefined("parameter '" + p.first + "' was not provided"));
    }
  }
  for (const auto& kv : args.kw) {
    bool known = false;
    for (const auto& p : node.params) known = known || p.first == kv.first;
    if (!known) fail_type("macro '" + node.text + "' takes no keyword argument '" + kv.first + "'");
  }
  std::string body;
  exec(node.body, f, body);
  return Value::string(std::move(body));
}

void Interpreter::assign(const Expr& target, const Value& v, const FramePtr& frame) {
  if (target.kind == ExprKind::kName) {
    frame->set(target.name, v);
  } else if (target.kind == ExprKind::kTuple) {
    std::vector<Value> items = iterate(v);
    if (items.size() != target.items.size()) {
      fail(std::string("ValueError: ") + (items.size() < target.items.size() ? "not enough" : "too many") +
           " values to unpack (expected " + std::to_string(target.items.size()) + ", got " + std::to_string(items.size()) + ")");
    }
    for (size_t k = 0; k < items.size(); ++k) assign(*target.items[k], items[k], frame);
  } else if (target.kind == ExprKind::kGetattr) {
    Value ns = eval(*target.a, frame);
    if (ns.kind != Kind::kObject || !ns.obj->mutable_attrs) {
      fail("TemplateRuntimeError: cannot assign attribute on non-namespace object");
    }
    budget_allocate(v.s.size(), "a namespace attribute");
    ns.obj->attrs.set(Value::string(target.name), v);
  } else {
    fail("TemplateSyntaxError: cannot assign to this expression");
  }
}

void Interpreter::exec_for(const Node& n, const FramePtr& frame, std::string& out) {
  const Value seq = eval(*n.expr, frame);
  std::shared_ptr<const std::vector<Value>> items;
  if (seq.is_seq() && !n.cond) {
    items = seq.list;  // lists are immutable: the loop shares it instead of copying
  } else {
    items = filtered_items(n, seq, frame);
  }
  if (items->empty()) {
    exec(n.else_body, frame, out);
    return;
  }
  // `loop` holds the items: it is a container as deep as they are.
  uint32_t items_depth = 0;
  if (items == seq.list) {
    items_depth = seq.depth > 0 ? seq.depth - 1 : 0;
  } else {
    for (const Value& v : *items) items_depth = std::max(items_depth, v.depth);
  }
  budget_check_depth(items_depth + 2, "a for loop");
  const int64_t len = static_cast<int64_t>(items->size());
  for (int64_t k = 0; k < len; ++k) {
    count_iteration();
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    assign(*n.target, (*items)[static_cast<size_t>(k)], f);
    Value lv;
    lv.kind = Kind::kObject;
    lv.depth = items_depth + 2;
    lv.obj = std::make_shared<Object>();
    lv.obj->type_name = "LoopContext";
    lv.obj->loop_items = items;
    lv.obj->loop_index = k;
    f->set("loop", std::move(lv));
    const Flow fl = exec(n.body, f, out);
    if (fl == Flow::kBreak) break;
  }
}

// The items of a for loop over `seq` that pass its `if` filter (all when it has none).
std::shared_ptr<const std::vector<Value>> Interpreter::filtered_items(const Node& n, const Value& seq, const FramePtr& frame) {
  std::vector<Value> all = iterate(seq);
  if (!n.cond) return std::make_shared<const std::vector<Value>>(std::move(all));
  auto items = std::make_shared<std::vector<Value>>();
  for (Value& v : all) {
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    assign(*n.target, v, f);
    count_iteration();
    if (truthy(eval(*n.cond, f))) items->push_back(std::move(v));
  }
  return items;
}

// ----- expressions -----

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  DepthGuard depth(*this);
  budget_step();
  Value v = eval_node(e, frame);
  // Strings are values, not shared: each one an expression yields was copied or made.
  budget_scan(v.s.size());
  return v;
}

// The cases live in functions of their own: a sanitizer build gives every local of a
// switch its own stack slot, and this frame is on the recursive path of every expression.
Value Interpreter::eval_node(const Expr& e, const FramePtr& frame) {
  switch (e.kind) {
    case ExprKind::kLiteral: return e.value;
    case ExprKind::kName: {
      if (const Value* v = frame->find(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict: return eval_display(e, frame);
    case ExprKind::kGetattr:
    case ExprKind::kGetitem: return eval_access(e, frame);
    case ExprKind::kSlice: return eval_slice(e, frame);
    case ExprKind::kCall:
    case ExprKind::kFilter:
    case ExprKind::kTest: return eval_call(e, frame);
    case ExprKind::kNeg:
    case ExprKind::kPos:
    case ExprKind::kNot: return eval_unary(e, frame);
    case ExprKind::kBinary: return eval_binary(e, frame);
    case ExprKind::kCompare: return eval_compare(e, frame);
    case ExprKind::kCond: {
      if (truthy(eval(*e.a, frame))) return eval(*e.b, frame);
      if (e.c) return eval(*e.c, frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined");
    }
  }
  return Value::undefined();
}

// [a, b], (a, b), {k: v}
Value Interpreter::eval_display(const Expr& e, const FramePtr& frame) {
  if (e.kind == ExprKind::kDict) {
    Dict d;
    for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
      Value key = eval(*e.items[k], frame);
      if (key.is_undefined() || key.is_seq() || key.is_dict()) fail_type(std::string("unhashable type: '") + type_name(key) + "'");
      d.set(key, eval(*e.items[k + 1], frame));
    }
    return Value::make_dict(std::move(d.items));
  }
  List items;
  for (const auto& x : e.items) items.push_back(eval(*x, frame));
  return e.kind == ExprKind::kList ? Value::make_list(std::move(items)) : Value::make_tuple(std::move(items));
}

// a.name, a[b]
Value Interpreter::eval_access(const Expr& e, const FramePtr& frame) {
  const Value obj = eval(*e.a, frame);
  if (e.kind == ExprKind::kGetattr) return getattr(obj, e.name);
  return getitem(obj, eval(*e.b, frame));
}

Value Interpreter::eval_slice(const Expr& e, const FramePtr& frame) {
  Value obj = eval(*e.a, frame);
  const Value start = e.b ? eval(*e.b, frame) : Value::none();
  const Value stop = e.c ? eval(*e.c, frame) : Value::none();
  const Value step = e.items[0] ? eval(*e.items[0], frame) : Value::none();
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_string()) {
    const std::u32string u = utf8_decode(obj.s);
    const SliceRange range = slice_range(static_cast<int64_t>(u.size()), start, stop, step);
    std::u32string r;
    r.reserve(range.count);
    range.each([&](size_t k) { r += u[k]; });
    return Value::string(utf8_encode(r));  // no longer than obj
  }
  if (obj.is_seq()) {
    const SliceRange range = slice_range(static_cast<int64_t>(obj.list->size()), start, stop, step);
    budget_check_size(size_mul(range.count, sizeof(Value), "a slice"), "a slice");
    List r;
    r.reserve(range.count);
    range.each([&](size_t k) { r.push_back((*obj.list)[k]); });
    return obj.kind == Kind::kList ? Value::make_list(std::move(r)) : Value::make_tuple(std::move(r));
  }
  fail_type(std::string("'") + type_name(obj) + "' object is not subscriptable");
}

// f(args), a | f(args), a is t(args)
Value Interpreter::eval_call(const Expr& e, const FramePtr& frame) {
  if (e.kind == ExprKind::kCall) {
    Value callee = eval(*e.a, frame);
    CallArgs args = eval_args(e, frame);
    return call(callee, args);
  }
  if (e.kind == ExprKind::kFilter) {
    Value base;
    if (e.a) {
      base = eval(*e.a, frame);
    } else if (block_value_) {
      base = *block_value_;
    }
    CallArgs args = eval_args(e, frame);
    return apply_filter(e.name, base, args, e.line);
  }
  Value base = e.a ? eval(*e.a, frame) : Value::undefined();
  CallArgs args = eval_args(e, frame);
  const bool r = apply_test(e.name, base, args, e.line);
  return Value::boolean(e.negate ? !r : r);
}

// -a, +a, not a
Value Interpreter::eval_unary(const Expr& e, const FramePtr& frame) {
  Value v = eval(*e.a, frame);
  if (e.kind == ExprKind::kNot) return Value::boolean(!truthy(v));
  if (v.is_undefined()) fail_undefined(v);
  if (v.kind == Kind::kFloat) return Value::number(e.kind == ExprKind::kNeg ? -v.f : v.f);
  if (v.kind == Kind::kInt || v.kind == Kind::kBool) {
    const int64_t x = as_int(v, "operand");
    return Value::integer(e.kind == ExprKind::kNeg ? checked_sub(0, x, "unary -") : x);
  }
  fail_type(std::string("bad operand type for unary ") + (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + type_name(v) + "'");
}

Value Interpreter::eval_compare(const Expr& e, const FramePtr& frame) {
  Value left = eval(*e.a, frame);
  for (const auto& [op, rexpr] : e.kwargs) {
    Value right = eval(*rexpr, frame);
    bool r;
    if (op == "==") r = equals(left, right);
    else if (op == "!=") r = !equals(left, right);
    else if (op == "in") r = contains(right, left);
    else if (op == "notin") r = !contains(right, left);
    else {
      const int c = compare(left, right);
      r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interpreter::eval_binary(const Expr& e, const FramePtr& frame) {
  const std::string& op = e.name;
  if (op == "and") {
    Value l = eval(*e.a, frame);
    return truthy(l) ? eval(*e.b, frame) : l;
  }
  if (op == "or") {
    Value l = eval(*e.a, frame);
    return truthy(l) ? l : eval(*e.b, frame);
  }
  const Value l = eval(*e.a, frame);
  const Value r = eval(*e.b, frame);
  return binary_op(op, l, r);
}

// l op r for the operators that evaluate both operands.
Value Interpreter::binary_op(const std::string& op, const Value& l, const Value& r) {
  if (op == "~") {
    std::string out = to_str(l);
    const std::string right = to_str(r);
    budget_check_size(size_add(out.size(), right.size(), "'~'"), "the result of '~'");
    out += right;
    return Value::string(std::move(out));
  }
  if (l.is_undefined()) fail_undefined(l);
  if (r.is_undefined()) fail_undefined(r);
  auto unsupported = [&]() -> Value {
    if (op == "+" && (l.is_string() || l.is_seq())) {
      fail_type(std::string("can only concatenate ") + type_name(l) + " (not \"" + type_name(r) + "\") to " + type_name(l));
    }
    fail_type("unsupported operand type(s) for " + op + ": '" + type_name(l) + "' and '" + type_name(r) + "'");
  };
  if (l.is_number() && r.is_number()) {
    const bool ints = l.kind != Kind::kFloat && r.kind != Kind::kFloat;
    if (ints && op != "/" && op != "**") {
      const int64_t x = as_int(l, "operand"), y = as_int(r, "operand");
      int64_t z = 0;
      if (op == "+") {
        z = checked_add(x, y, "+");
      } else if (op == "-") {
        z = checked_sub(x, y, "-");
      } else if (op == "*") {
        z = checked_mul(x, y, "*");
      } else if (op == "//" || op == "%") {
        z = floor_div_or_mod(x, y, op == "%");
      }
      return Value::integer(z);
    }
    const double x = as_double(l), y = as_double(r);
    if (op == "+") return Value::number(x + y);
    if (op == "-") return Value::number(x - y);
    if (op == "*") return Value::number(x * y);
    if (op == "/") {
      if (y == 0) fail("ZeroDivisionError: division by zero");
      return Value::number(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) fail("ZeroDivisionError: float division by zero");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::number(op == "%" ? m : std::floor(x / y));
    }
    if (op == "**") {
      if (ints && as_int(r, "exponent") >= 0) return Value::integer(checked_pow(as_int(l, "base"), as_int(r, "exponent")));
      return Value::number(std::pow(x, y));
    }
    return unsupported();
  }
  if (op == "+") {
    if (l.is_string() && r.is_string()) {
      budget_check_size(size_add(l.s.size(), r.s.size(), "'+'"), "the result of '+'");
      return Value::string(l.s + r.s);
    }
    if (l.is_seq() && l.kind == r.kind) {
      budget_check_size(size_add(value_bytes(l), value_bytes(r), "'+'"), "the result of '+'");
      List out = *l.list;
      out.insert(out.end(), r.list->begin(), r.list->end());
      return l.kind == Kind::kList ? Value::make_list(std::move(out)) : Value::make_tuple(std::move(out));
    }
    return unsupported();
  }
  if (op == "*") {
    const Value& seq = l.is_number() ? r : l;
    const Value& num = l.is_number() ? l : r;
    if ((seq.is_string() || seq.is_seq()) && (num.kind == Kind::kInt || num.kind == Kind::kBool)) {
      return repeat(seq, as_int(num, "count"));
    }
    return unsupported();
  }
  if (op == "%" && l.is_string()) return Value::string(py_percent_format(l.s, r));
  return unsupported();
}

// seq * n. The size is computed, overflow-checked, before anything is built; an empty
// seq is empty whatever n (no loop of 2**62 appends of nothing).
Value Interpreter::repeat(const Value& seq, int64_t n) {
  const size_t unit = value_bytes(seq);
  const size_t count = n > 0 ? static_cast<size_t>(n) : 0;
  budget_check_size(size_mul(unit, count, "repetition ('*')"), "the result of repetition ('*')");
  const bool empty = seq.is_string() ? seq.s.empty() : seq.list->empty();
  if (seq.is_string()) {
    std::string out;
    if (!empty && count > 0) {
      const size_t total = unit * count;
      out.reserve(total);
      out = seq.s;
      while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));  // doubling
    }
    return Value::string(std::move(out));
  }
  List out;
  if (!empty) {
    out.reserve(seq.list->size() * count);
    for (size_t k = 0; k < count; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  }
  return seq.kind == Kind::kList ? Value::make_list(std::move(out)) : Value::make_tuple(std::move(out));
}

// ----- globals -----

void Interpreter::install_globals(Frame& g) {
  g.set("raise_exception", make_callable("raise_exception", [](CallArgs& a) -> Value {
          const Value* m = a.get(0, "message");
          throw JinjaError(JinjaError::Kind::kRaised, m ? to_str(*m) : std::string());
        }));
  std::tm now = now_;
  g.set("strftime_now", make_callable("strftime_now", [now](CallArgs& a) -> Value {
          const Value* f = a.get(0, "format");
          if (f == nullptr || !f->is_string()) fail_type("strftime_now() needs a format string");
          char buf[512];
          std::tm t = now;
          const size_t n = std::strftime(buf, sizeof buf, f->s.c_str(), &t);
          return Value::string(std::string(buf, n));
        }));
  g.set("namespace", make_callable("namespace", [this](CallArgs& a) -> Value {
          budget_allocate(sizeof(Object), "namespace()");
          auto o = std::make_shared<Object>();
          namespaces_.push_back(o);
          o->type_name = "Namespace";
          o->mutable_attrs = true;
          for (const Value& p : a.pos) {
            if (!p.is_dict()) fail_type("namespace() positional argument must be a dict");
            for (const auto& kv : p.dict->items) o->attrs.set(kv.first, kv.second);
          }
          for (const auto& kv : a.kw) o->attrs.set(Value::string(kv.first), kv.second);
          Value v;
          v.kind = Kind::kObject;
          v.depth = 1;  // what it holds is cut off at the end of the render (see ~Interpreter)
          v.obj = o;
          return v;
        }));
  g.set("range", make_callable("range", [](CallArgs& a) -> Value {
          if (a.pos.empty() || a.pos.size() > 3) fail_type("range expected 1 to 3 arguments");
          int64_t start = 0, stop, step = 1;
          if (a.pos.size() == 1) {
            stop = as_int(a.pos[0], "range()");
          } else {
            start = as_int(a.pos[0], "range()");
            stop = as_int(a.pos[1], "range()");
            if (a.pos.size() == 3) step = as_int(a.pos[2], "range()");
          }
          if (step == 0) fail("ValueError: range() arg 3 must not be zero");
          // The length first, in unsigned arithmetic (stop - start may not fit an int64).
          uint64_t len = 0;
          if (step > 0 && start < stop) {
            len = (static_cast<uint64_t>(stop) - static_cast<uint64_t>(start) - 1) / static_cast<uint64_t>(step) + 1;
          } else if (step < 0 && start > stop) {
            len = (static_cast<uint64_t>(start) - static_cast<uint64_t>(stop) - 1) / (0 - static_cast<uint64_t>(step)) + 1;
          }
          if (len > 100000) fail("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
          List out;
          out.reserve(static_cast<size_t>(len));
          int64_t k = start;
          for (uint64_t n = 0; n < len; ++n) {
            out.push_back(Value::integer(k));
            if (n + 1 < len) k += step;  // stays between start and stop
          }
          return Value::make_list(std::move(out));
        }));
  g.set("dict", make_callable("dict", [](CallArgs& a) -> Value {
          Dict d;
          for (const Value& p : a.pos) {
            if (p.is_dict()) {
              for (const auto& kv : p.dict->items) d.set(kv.first, kv.second);
            } else {
              for (const Value& pair : iterate(p)) {
                std::vector<Value> kv = iterate(pair);
                if (kv.size() != 2) fail("ValueError: dictionary update sequence element has wrong length");
                d.set(kv[0], kv[1]);
              }
            }
          }
          for (const auto& kv : a.kw) d.set(Value::string(kv.first), kv.second);
          return Value::make_dict(std::move(d.items));
        }));
}

// ----- methods of str, dict and list (ImmutableSandboxedEnvironment's view) -----

Value Interpreter::method(const Value& obj, const std::string& name) {
  // A bound method holds a copy of its object: it is a container one level deeper.
  auto bind = [&](auto fn) {
    Value m = make_callable(name, [obj, fn](CallArgs& a) -> Value { return fn(obj, a); });
    m.depth = obj.depth + 1;
    budget_check_depth(m.depth, "a bound method");
    return m;
  };
  auto opt_str = [](const Value* v) -> const Value* { return v && !v->is_none() ? v : nullptr; };
  if (obj.is_string()) {
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const bool l = name != "rstrip", r = name != "lstrip";
      return bind([l, r, opt_str](const Value& s, CallArgs& a) {
        const Value* c = opt_str(a.get(0, "chars"));
        if (c && !c->is_string()) fail_type("strip arg must be None or str");
        std::u32string chars = c ? utf8_decode(c->s) : std::u32string();
        return Value::string(py_strip(s.s, c ? &chars : nullptr, l, r));
      });
    }
    if (name == "split" || name == "rsplit") {
      const bool rs = name == "rsplit";
      return bind([rs](const Value& s, CallArgs& a) {
        const Value* sep = a.get(0, "sep");
        const Value* ms = a.get(1, "maxsplit");
        const int64_t maxsplit = ms ? as_int(*ms, "maxsplit") : -1;
        std::vector<std::string> parts;
        if (rs && maxsplit >= 0 && sep && sep->is_string()) {
          // rsplit with a limit: split from the right, which is splitting the byte-reversed
          // string at the reversed separator from the left (in linear time).
          if (sep->s.empty()) fail("ValueError: empty separator");
          const std::string rs_s(s.s.rbegin(), s.s.rend());
          const std::string rs_sep(sep->s.rbegin(), sep->s.rend());
          std::vector<std::string> rev;
          size_t k = 0;
          while (static_cast<int64_t>(rev.size()) < maxsplit) {
            const size_t f = str_find(rs_s, rs_sep, k);
            if (f == std::string::npos) break;
            rev.emplace_back(rs_s.rbegin() + static_cast<std::ptrdiff_t>(rs_s.size() - f),
                             rs_s.rbegin() + static_cast<std::ptrdiff_t>(rs_s.size() - k));
            check_pieces(rev.size(), s.s.size(), "rsplit()");
            k = f + rs_sep.size();
          }
          parts.emplace_back(rs_s.rbegin(), rs_s.rbegin() + static_cast<std::ptrdiff_t>(rs_s.size() - k));
          parts.insert(parts.end(), rev.rbegin(), rev.rend());
        } else {
          parts = py_split(s.s, sep, maxsplit);
        }
        List out;
        for (auto& p : parts) out.push_back(Value::string(std::move(p)));
        return Value::make_list(std::move(out));
      });
    }
    if (name == "splitlines") {
      return bind([](const Value& s, CallArgs& a) {
        const Value* k = a.get(0, "keepends");
        List out;
        for (auto& p : py_splitlines(s.s, k && truthy(*k))) out.push_back(Value::string(std::move(p)));
        return Value::make_list(std::move(out));
      });
    }
    if (name == "startswith" || name == "endswith") {
      const bool start = name == "startswith";
      return bind([start](const Value& s, CallArgs& a) {
        const Value* p = a.get(0, "prefix");
        if (p == nullptr) fail_type(std::string(start ? "startswith" : "endswith") + "() takes at least 1 argument");
        const std::vector<Value> one{p->kind == Kind::kTuple ? Value::none() : *p};
        const std::vector<Value>& cands = p->kind == Kind::kTuple ? *p->list : one;
        budget_step(cands.size());
        for (const Value& c : cands) {
          if (!c.is_string()) fail_type(std::string(start ? "startswith" : "endswith") + " first arg must be str or a tuple of str, not " + type_name(c));
          if (c.s.size() <= s.s.size() &&
              (start ? s.s.compare(0, c.s.size(), c.s) == 0 : s.s.compare(s.s.size() - c.s.size(), c.s.size(), c.s) == 0)) {
            return Value::boolean(true);
          }
        }
        return Value::boolean(false);
      });
    }
    if (name == "upper") return bind([](const Value& s, CallArgs&) { return Value::string(str_upper(s.s)); });
    if (name == "lower" || name == "casefold") return bind([](const Value& s, CallArgs&) { return Value::string(str_lower(s.s)); });
    if (name == "title") return bind([](const Value& s, CallArgs&) { return Value::string(py_title(s.s)); });
    if (name == "capitalize") return bind([](const Value& s, CallArgs&) { return Value::string(py_capitalize(s.s)); });
    if (name == "replace") {
      return bind([](const Value& s, CallArgs& a) {
        const Value* o = a.get(0, "old");
        const Value* n = a.get(1, "new");
        const Value* c = a.get(2, "count");
        if (!o || !n || !o->is_string() || !n->is_string()) fail_type("replace() arguments must be str");
        return Value::string(py_replace(s.s, o->s, n->s, c ? as_int(*c, "count") : -1));
      });
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
      return bind([name](const Value& s, CallArgs& a) {
        const Value* sub = a.get(0, "sub");
        if (!sub || !sub->is_string()) fail_type(name + "() argument must be str");
        if (name == "count") {
          if (sub->s.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s.s)) + 1);
          int64_t n = 0;
          for (size_t k = str_find(s.s, sub->s); k != std::string::npos; k = str_find(s.s, sub->s, k + sub->s.size())) ++n;
          return Value::integer(n);
        }
        size_t f = std::string::npos;
        if (name[0] != 'r') {
          f = str_find(s.s, sub->s);
        } else if (sub->s.size() <= s.s.size()) {
          // The last occurrence is the first one in the byte-reversed string.
          const size_t r = str_find(std::string(s.s.rbegin(), s.s.rend()), std::string(sub->s.rbegin(), sub->s.rend()));
          if (r != std::string::npos) f = s.s.size() - r - sub->s.size();
        }
        if (f == std::string::npos) {
          if (name == "index" || name == "rindex") fail("ValueError: substring not found");
          return Value::integer(-1);
        }
        return Value::integer(static_cast<int64_t>(utf8_length(std::string_view(s.s).substr(0, f))));
      });
    }
    if (name == "join") {
      return bind([](const Value& s, CallArgs& a) {
        const Value* it = a.get(0, "iterable");
        if (!it) fail_type("join() takes exactly one argument");
        std::string out;
        bool first = true;
        for (const Value& v : iterate(*it)) {
          if (!v.is_string()) fail_type(std::string("sequence item: expected str instance, ") + type_name(v) + " found");
          budget_check_size(size_add(out.size(), size_add(first ? 0 : s.s.size(), v.s.size(), "join()"), "join()"), "join()");
          if (!first) out += s.s;
          first = false;
          out += v.s;
        }
        return Value::string(std::move(out));
      });
    }
    if (name == "removeprefix" || name == "removesuffix") {
      const bool pre = name == "removeprefix";
      return bind([pre](const Value& s, CallArgs& a) {
        const Value* x = a.get(0, "prefix");
        if (!x || !x->is_string()) fail_type("argument must be str");
        if (pre && s.s.compare(0, x->s.size(), x->s) == 0) return Value::string(s.s.substr(x->s.size()));
        if (!pre && x->s.size() <= s.s.size() && s.s.compare(s.s.size() - x->s.size(), x->s.size(), x->s) == 0) {
          return Value::string(s.s.substr(0, s.s.size() - x->s.size()));
        }
        return s;
      });
    }
    if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
        name == "islower") {
      return bind([name](const Value& s, CallArgs&) {
        if (s.s.empty()) return Value::boolean(false);
        if (name == "isspace") {
          for (char32_t c : utf8_decode(s.s)) {
            if (!is_py_space(c)) return Value::boolean(false);
          }
          return Value::boolean(true);
        }
        bool cased = false;
        for (char ch : s.s) {
          const unsigned char c = static_cast<unsigned char>(ch);
          if (name == "isdigit" && !std::isdigit(c)) return Value::boolean(false);
          if (name == "isalpha" && !std::isalpha(c)) return Value::boolean(false);
          if (name == "isalnum" && !std::isalnum(c)) return Value::boolean(false);
          if (name == "isupper" && std::islower(c)) return Value::boolean(false);
          if (name == "islower" && std::isupper(c)) return Value::boolean(false);
          cased = cased || std::isalpha(c);
        }
        return Value::boolean(name == "isupper" || name == "islower" ? cased : true);
      });
    }
    if (name == "format") {
      return bind([](const Value& s, CallArgs& a) {
        // "{}" / "{0}" / "{name}" replacement fields without format specs.
        std::string out;
        size_t auto_idx = 0;
        for (size_t k = 0; k < s.s.size(); ++k) {
          const char c = s.s[k];
          if (c == '{' && k + 1 < s.s.size() && s.s[k + 1] == '{') {
            out += '{';
            ++k;
          } else if (c == '}' && k + 1 < s.s.size() && s.s[k + 1] == '}') {
            out += '}';
            ++k;
          } else if (c == '{') {
            const size_t e = s.s.find('}', k);
            if (e == std::string::npos) fail("ValueError: Single '{' encountered in format string");
            const std::string field = s.s.substr(k + 1, e - k - 1);
            const Value* v = nullptr;
            if (field.empty()) {
              v = auto_idx < a.pos.size() ? &a.pos[auto_idx] : nullptr;
              ++auto_idx;
            } else if (std::all_of(field.begin(), field.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); })) {
              const std::optional<int64_t> idx = parse_digits(field);
              v = idx && static_cast<uint64_t>(*idx) < a.pos.size() ? &a.pos[static_cast<size_t>(*idx)] : nullptr;
            } else {
              for (const auto& kv : a.kw) {
                if (kv.first == field) v = &kv.second;
              }
            }
            if (v == nullptr) fail("IndexError: Replacement index out of range for positional args tuple");
            out += to_str(*v);
            budget_check_size(out.size(), "format()");
            k = e;
          } else {
            out += c;
          }
        }
        return Value::string(std::move(out));
      });
    }
    return Value::undefined();
  }
  if (obj.is_dict()) {
    if (name == "items") {
      return bind([](const Value& d, CallArgs&) {
        List out;
        out.reserve(d.dict->items.size());
        for (const auto& kv : d.dict->items) out.push_back(Value::make_tuple({kv.first, kv.second}));
        return Value::make_list(std::move(out));
      });
    }
    if (name == "keys" || name == "values") {
      const bool keys = name == "keys";
      return bind([keys](const Value& d, CallArgs&) {
        List out;
        for (const auto& kv : d.dict->items) out.push_back(keys ? kv.first : kv.second);
        return Value::make_list(std::move(out));
      });
    }
    if (name == "get") {
      return bind([](const Value& d, CallArgs& a) {
        const Value* k = a.get(0, "key");
        if (!k) fail_type("get expected at least 1 argument, got 0");
        if (const Value* v = d.dict->find(*k)) return *v;
        const Value* def = a.get(1, "default");
        return def ? *def : Value::none();
      });
    }
    if (name == "copy") return bind([](const Value& d, CallArgs&) { return Value::make_dict(d.dict->items); });
  }
  if (obj.is_seq()) {
    if (name == "index" || name == "count") {
      const bool idx = name == "index";
      return bind([idx](const Value& l, CallArgs& a) {
        const Value* x = a.get(0, "value");
        if (!x) fail_type("expected 1 argument");
        int64_t n = 0;
        budget_step(l.list->size());
        for (size_t k = 0; k < l.list->size(); ++k) {
          if (equals((*l.list)[k], *x)) {
            if (idx) return Value::integer(static_cast<int64_t>(k));
            ++n;
          }
        }
        if (idx) fail("ValueError: value is not in list");
        return Value::integer(n);
      });
    }
  }
  static const char* const kMutating[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort",
                                          "clear", "update", "setdefault", "popitem", "add", "discard"};
  if ((obj.is_seq() || obj.is_dict()) && std::find_if(std::begin(kMutating), std::end(kMutating), [&](const char* m) {
                                           return name == m;
                                         }) != std::end(kMutating)) {
    const std::string tn = type_name(obj);
    return make_callable(name, [name, tn](CallArgs&) -> Value {
      fail("SecurityError: access to attribute '" + name + "' of '" + tn + "' object is unsafe.");
    });
  }
  return Value::undefined();
}

// ----- filters -----

const Value* arg(CallArgs& a, size_t index, std::string_view name) { return a.get(index, name); }

Value f_tojson(Interpreter&, const Value& v, CallArgs& a) {
  JsonOptions o;
  if (const Value* x = arg(a, 0, "ensure_ascii")) o.ensure_ascii = truthy(*x);
  if (const Value* x = arg(a, 1, "indent"); x && !x->is_none()) {
    if (x->is_string()) {
      o.indent = x->s;
    } else {
      const size_t width = static_cast<size_t>(std::max<int64_t>(0, as_int(*x, "indent")));
      budget_check_size(width, "a tojson indent");
      o.indent = std::string(width, ' ');
    }
    o.item_sep = ",";
  }
  if (const Value* x = arg(a, 2, "separators"); x && !x->is_none()) {
    std::vector<Value> seps = iterate(*x);
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) fail("ValueError: separators must be a pair of strings");
    o.item_sep = seps[0].s;
    o.key_sep = seps[1].s;
  }
  if (const Value* x = arg(a, 3, "sort_keys")) o.sort_keys = truthy(*x);
  return Value::string(json_dumps(v, o));
}

Value f_length(Interpreter&, const Value& v, CallArgs&) { return Value::integer(length_of(v)); }
Value f_upper(Interpreter&, const Value& v, CallArgs&) { return Value::string(str_upper(to_str(v))); }
Value f_lower(Interpreter&, const Value& v, CallArgs&) { return Value::string(str_lower(to_str(v))); }
Value f_capitalize(Interpreter&, const Value& v, CallArgs&) { return Value::string(py_capitalize(to_str(v))); }
Value f_title(Interpreter&, const Value& v, CallArgs&) {
  // jinja2: each word (split at -, whitespace and opening brackets) gets its first
  // character upper-cased and the rest lower-cased.
  std::string out;
  bool at_start = true;
  for (char32_t c : utf8_decode(to_str(v))) {
    if (c == '-' || is_py_space(c) || c == '(' || c == '{' || c == '[' || c == '<') {
      utf8_append(out, c);
      at_start = true;
    } else {
      if (at_start) out += py_upper(utf8_encode(std::u32string(1, c)));
      else out += py_lower(utf8_encode(std::u32string(1, c)));
      at_start = false;
    }
  }
  return Value::string(std::move(out));
}
Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  const Value* c = arg(a, 0, "chars");
  if (c && !c->is_none()) {
    std::u32string chars = utf8_decode(to_str(*c));
    return Value::string(py_strip(to_str(v), &chars, true, true));
  }
  return Value::string(py_strip(to_str(v), nullptr, true, true));
}
Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default_value");
  const Value* b = arg(a, 1, "boolean");
  if (v.is_undefined() || (b && truthy(*b) && !truthy(v))) return d ? *d : Value::string("");
  return v;
}
Value f_string(Interpreter&, const Value& v, CallArgs&) { return Value::string(to_str(v)); }
Value f_safe(Interpreter&, const Value& v, CallArgs&) { return v; }
Value f_list(Interpreter&, const Value& v, CallArgs&) { return Value::make_list(iterate(v)); }
Value f_items(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::make_list();
  if (!v.is_dict()) fail_type("Can only get item pairs from a mapping.");
  List out;
  out.reserve(v.dict->items.size());
  for (const auto& kv : v.dict->items) out.push_back(Value::make_tuple({kv.first, kv.second}));
  return Value::make_list(std::move(out));
}
Value f_first(Interpreter&, const Value& v, CallArgs&) {
  std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}
Value f_last(Interpreter&, const Value& v, CallArgs&) {
  std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}
Value f_reverse(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string u = utf8_decode(v.s);
    std::reverse(u.begin(), u.end());
    return Value::string(utf8_encode(u));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}
Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "d");
  const Value* at = arg(a, 1, "attribute");
  const std::string sep = d ? to_str(*d) : std::string();
  const std::string path = at && !at->is_none() ? to_str(*at) : std::string();
  std::string out;
  bool first = true;
  for (const Value& x : iterate(v)) {
    const std::string piece = to_str(at && !at->is_none() ? in.attr_path(x, path) : x);
    budget_check_size(size_add(out.size(), size_add(first ? 0 : sep.size(), piece.size(), "join"), "join"), "join");
    if (!first) out += sep;
    first = false;
    out += piece;
  }
  return Value::string(std::move(out));
}
Value f_replace(Interpreter&, const Value& v, CallArgs& a) {
  const Value* o = arg(a, 0, "old");
  const Value* n = arg(a, 1, "new");
  const Value* c = arg(a, 2, "count");
  if (!o || !n) fail_type("replace filter needs old and new");
  return Value::string(py_replace(to_str(v), to_str(*o), to_str(*n), c && !c->is_none() ? as_int(*c, "count") : -1));
}
Value f_indent(Interpreter&, const Value& v, CallArgs& a) {
  const Value* w = arg(a, 0, "width");
  const Value* first = arg(a, 1, "first");
  const Value* blank = arg(a, 2, "blank");
  std::string ind;
  if (w == nullptr) {
    ind = std::string(4, ' ');
  } else if (w->is_string()) {
    ind = w->s;
  } else {
    const size_t width = static_cast<size_t>(std::max<int64_t>(0, as_int(*w, "width")));
    budget_check_size(width, "an indent width");
    ind = std::string(width, ' ');
  }
  const std::string s = to_str(v) + "\n";
  std::vector<std::string> lines = py_splitlines(s, false);
  // Every line may get the indent: size the result before building it.
  budget_check_size(size_add(s.size(), size_mul(lines.size() + 1, ind.size(), "indent"), "indent"), "indent");
  std::string rv;
  if (blank && truthy(*blank)) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t k = 1; k < lines.size(); ++k) rv += (k > 1 ? "\n" : "") + (lines[k].empty() ? "" : ind) + lines[k];
    }
  }
  if (first && truthy(*first)) rv = ind + rv;
  return Value::string(std::move(rv));
}
Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  const Value def = d ? *d : Value::integer(0);
  switch (v.kind) {
    case Kind::kInt: return v;
    case Kind::kBool: return Value::integer(v.b);
    case Kind::kFloat: return std::isfinite(v.f) ? Value::integer(float_to_int(v.f)) : def;
    case Kind::kString: {
      const std::string s = py_strip(v.s, nullptr, true, true);
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0' && errno == 0) return Value::integer(x);
      const double f = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0' && std::isfinite(f)) return Value::integer(float_to_int(f));
      return def;
    }
    default: return def;
  }
}
Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  const Value def = d ? *d : Value::number(0.0);
  if (v.is_number()) return Value::number(as_double(v));
  if (v.is_string()) {
    const std::string s = py_strip(v.s, nullptr, true, true);
    char* end = nullptr;
    const double f = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return Value::number(f);
  }
  return def;
}
Value f_abs(Interpreter&, const Value& v, CallArgs&) {
  if (v.kind == Kind::kFloat) return Value::number(std::fabs(v.f));
  const int64_t x = as_int(v, "abs()");
  return Value::integer(x < 0 ? checked_sub(0, x, "abs()") : x);
}
Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  const Value* p = arg(a, 0, "precision");
  const Value* m = arg(a, 1, "method");
  const int64_t prec = p ? as_int(*p, "precision") : 0;
  const std::string method = m ? to_str(*m) : "common";
  const double x = as_double(v);
  const double scale = std::pow(10.0, static_cast<double>(prec));
  if (method == "ceil") return Value::number(std::ceil(x * scale) / scale);
  if (method == "floor") return Value::number(std::floor(x * scale) / scale);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::clamp<int64_t>(prec, 0, 300)), x);
  return Value::number(std::strtod(buf, nullptr));
}
Value f_escape(Interpreter&, const Value& v, CallArgs&) {
  const std::string s = to_str(v);
  size_t size = s.size();
  for (char c : s) size += c == '&' || c == '"' || c == '\'' ? 4 : c == '<' || c == '>' ? 3 : 0;
  budget_check_size(size, "escape");
  std::string out;
  out.reserve(size);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}
Value f_format(Interpreter&, const Value& v, CallArgs& a) {
  Value args = a.pos.size() == 1 ? a.pos[0] : Value::make_tuple(a.pos);
  if (a.pos.size() == 1 && a.pos[0].kind == Kind::kTuple) args = Value::make_tuple({a.pos[0]});
  return Value::string(py_percent_format(to_str(v), args));
}
Value f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* n = arg(a, 0, "name");
  if (!n) fail_type("attr filter needs a name");
  if (v.kind == Kind::kObject) return in.getattr(v, to_str(*n));
  Value m = in.method(v, to_str(*n));
  return m.kind == Kind::kCallable ? m : Interpreter::missing(v, to_str(*n));
}

Value sort_key(Interpreter& in, const Value& x, const Value* attribute) {
  return attribute && !attribute->is_none() ? in.attr_path(x, to_str(*attribute)) : x;
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* rev = arg(a, 0, "reverse");
  const Value* cs = arg(a, 1, "case_sensitive");
  const Value* at = arg(a, 2, "attribute");
  std::vector<Value> items = iterate(v);
  const bool case_sensitive = cs && truthy(*cs);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return compare(sort_key(in, x, at), sort_key(in, y, at), case_sensitive) < 0;
  });
  if (rev && truthy(*rev)) std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}
Value f_dictsort(Interpreter&, const Value& v, CallArgs& a) {
  const Value* cs = arg(a, 0, "case_sensitive");
  const Value* by = arg(a, 1, "by");
  const Value* rev = arg(a, 2, "reverse");
  if (!v.is_dict()) fail_type("You can only sort by either \"key\" or \"value\" of a mapping");
  const bool by_value = by && to_str(*by) == "value";
  List items;
  for (const auto& kv : v.dict->items) items.push_back(Value::make_tuple({kv.first, kv.second}));
  const bool case_sensitive = cs && truthy(*cs);
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return compare((*x.list)[by_value ? 1 : 0], (*y.list)[by_value ? 1 : 0], case_sensitive) < 0;
  });
  if (rev && truthy(*rev)) std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}
Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* cs = arg(a, 0, "case_sensitive");
  const Value* at = arg(a, 1, "attribute");
  const bool case_sensitive = cs && truthy(*cs);
  List out;
  std::vector<Value> seen;
  for (const Value& x : iterate(v)) {
    Value key = sort_key(in, x, at);
    if (!case_sensitive && key.is_string()) key = Value::string(str_lower(key.s));
    bool dup = false;
    for (const Value& s : seen) dup = dup || equals(s, key);
    if (!dup) {
      seen.push_back(key);
      out.push_back(x);
    }
  }
  return Value::make_list(std::move(out));
}
Value min_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  const Value* cs = arg(a, 0, "case_sensitive");
  const Value* at = arg(a, 1, "attribute");
  const bool case_sensitive = cs && truthy(*cs);
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    const int c = compare(sort_key(in, items[k], at), sort_key(in, items[best], at), case_sensitive);
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }
Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* at = arg(a, 0, "attribute");
  const Value* st = arg(a, 1, "start");
  Value total = st ? *st : Value::integer(0);
  for (const Value& x : iterate(v)) {
    const Value y = sort_key(in, x, at);
    if (total.kind == Kind::kFloat || y.kind == Kind::kFloat) total = Value::number(as_double(total) + as_double(y));
    else total = Value::integer(checked_add(as_int(total, "sum"), as_int(y, "sum"), "sum"));
  }
  return total;
}

// select/reject/selectattr/rejectattr share one shape.
Value select_common(Interpreter& in, const Value& v, CallArgs& a, bool want, bool by_attr) {
  size_t k = 0;
  std::string attribute;
  if (by_attr) {
    if (a.pos.empty()) fail_type("selectattr needs an attribute name");
    attribute = to_str(a.pos[0]);
    k = 1;
  }
  std::string test;
  CallArgs targs;
  if (k < a.pos.size()) {
    test = to_str(a.pos[k]);
    targs.pos.assign(a.pos.begin() + static_cast<ptrdiff_t>(k) + 1, a.pos.end());
  }
  targs.kw = a.kw;
  List out;
  for (const Value& x : iterate(v)) {
    const Value subject = by_attr ? in.attr_path(x, attribute) : x;
    const bool ok = test.empty() ? truthy(subject) : in.apply_test(test, subject, targs, 0);
    if (ok == want) out.push_back(x);
  }
  return Value::make_list(std::move(out));
}
Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, true, false); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_common(in, v, a, false, true); }

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  List out;
  const Value* at = nullptr;
  const Value* def = nullptr;
  for (const auto& kv : a.kw) {
    if (kv.first == "attribute") at = &kv.second;
    if (kv.first == "default") def = &kv.second;
  }
  if (at) {
    for (const Value& x : iterate(v)) {
      Value y = in.attr_path(x, to_str(*at));
      out.push_back(y.is_undefined() && def ? *def : y);
    }
    return Value::make_list(std::move(out));
  }
  if (a.pos.empty()) fail_type("map requires a filter argument");
  const std::string filter = to_str(a.pos[0]);
  CallArgs fargs;
  fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
  fargs.kw = a.kw;
  size_t args_bytes = 0;  // copied for every item
  for (const Value& x : fargs.pos) args_bytes += x.s.size();
  for (const auto& kv : fargs.kw) args_bytes += kv.second.s.size();
  for (const Value& x : iterate(v)) {
    budget_scan(args_bytes);
    CallArgs copy = fargs;
    out.push_back(in.apply_filter(filter, x, copy, 0));
    check_pieces(out.size(), 0, "map");
  }
  return Value::make_list(std::move(out));
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> kFilters = {
      {"tojson", f_tojson},     {"length", f_length},       {"count", f_length},       {"upper", f_upper},
      {"lower", f_lower},       {"capitalize", f_capitalize}, {"title", f_title},      {"trim", f_trim},
      {"default", f_default},   {"d", f_default},           {"string", f_string},      {"safe", f_safe},
      {"list", f_list},         {"items", f_items},         {"first", f_first},        {"last", f_last},
      {"reverse", f_reverse},   {"join", f_join},           {"replace", f_replace},    {"indent", f_indent},
      {"int", f_int},           {"float", f_float},         {"abs", f_abs},            {"round", f_round},
      {"escape", f_escape},     {"e", f_escape},            {"format", f_format},      {"attr", f_attr},
      {"sort", f_sort},         {"dictsort", f_dictsort},   {"unique", f_unique},      {"max", f_max},
      {"min", f_min},           {"sum", f_sum},             {"select", f_select},      {"reject", f_reject},
      {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map},
  };
  return kFilters;
}

Value Interpreter::apply_filter(const std::string& name, const Value& v, CallArgs& args, int line) {
  budget_step();
  budget_scan(name.size());  // hashed to find it
  const auto& table = filters();
  auto it = table.find(name);
  if (it == table.end()) {
    fail_at(line, "TemplateRuntimeError: No filter named '" + name + "' found.");
  }
  return it->second(*this, v, args);
}

// ----- tests -----

const Value& test_arg(CallArgs& a, const char* test) {
  if (a.pos.empty()) fail_type(std::string("test '") + test + "' needs an argument");
  return a.pos[0];
}

const char* const kTestNames[] = {"defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
                                  "number", "string", "mapping", "iterable", "sequence", "callable", "sameas", "eq",
                                  "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
                                  "greaterthan", ">", "ge", ">=", "in", "odd", "even", "divisibleby", "lower",
                                  "upper", "escaped"};

bool known_test(const std::string& name) {
  return std::any_of(std::begin(kTestNames), std::end(kTestNames), [&](const char* t) { return name == t; });
}

bool Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& a, int line) {
  budget_step();
  static const char* const kNoArgs[] = {"defined", "undefined", "none",     "boolean",  "false", "true",
                                        "integer", "float",     "number",   "string",   "mapping", "iterable",
                                        "sequence", "callable", "odd",      "even",     "lower", "upper", "escaped"};
  if (!a.pos.empty() || !a.kw.empty()) {
    for (const char* t : kNoArgs) {
      if (name == t) fail_type("test_" + name + "() takes 1 positional argument but " + std::to_string(1 + a.pos.size() + a.kw.size()) + " were given");
    }
  }
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::kBool;
  if (name == "false") return v.kind == Kind::kBool && !v.b;
  if (name == "true") return v.kind == Kind::kBool && v.b;
  if (name == "integer") return v.kind == Kind::kInt;
  if (name == "float") return v.kind == Kind::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_string() || v.is_seq() || v.is_dict() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_seq() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.kind == Kind::kCallable;
  if (name == "sameas") {
    const Value& o = test_arg(a, "sameas");
    if (v.kind != o.kind) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.kind == Kind::kBool) return v.b == o.b;
    if (v.is_seq()) return v.list == o.list;
    if (v.is_dict()) return v.dict == o.dict;
    return equals(v, o) && (v.kind == Kind::kInt || v.kind == Kind::kString);
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, test_arg(a, "eq"));
  if (name == "ne" || name == "!=") return !equals(v, test_arg(a, "ne"));
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, test_arg(a, "lt")) < 0;
  if (name == "le" || name == "<=") return compare(v, test_arg(a, "le")) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, test_arg(a, "gt")) > 0;
  if (name == "ge" || name == ">=") return compare(v, test_arg(a, "ge")) >= 0;
  if (name == "in") return contains(test_arg(a, "in"), v);
  if (name == "odd" || name == "even") {
    const int64_t x = as_int(v, name.c_str());
    return ((x % 2) != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const int64_t d = as_int(test_arg(a, "divisibleby"), "divisibleby");
    if (d == 0) fail("ZeroDivisionError: integer division or modulo by zero");
    return as_int(v, "divisibleby") % d == 0;
  }
  if (name == "lower") return to_str(v) == str_lower(to_str(v));
  if (name == "upper") return to_str(v) == str_upper(to_str(v));
  if (name == "escaped") return false;
  fail_at(line, "TemplateRuntimeError: No test named '" + name + "' found.");
}

void check_expr(const Expr* e, bool soft) {
  if (e == nullptr) return;
  if (e->kind == ExprKind::kCond) soft = true;
  if (e->kind == ExprKind::kFilter && !soft && filters().count(e->name) == 0) {
    fail_at(e->line, "TemplateAssertionError: No filter named '" + e->name + "'.");
  }
  if (e->kind == ExprKind::kTest && !soft && !known_test(e->name)) {
    fail_at(e->line, "TemplateAssertionError: No test named '" + e->name + "'.");
  }
  check_expr(e->a.get(), soft);
  check_expr(e->b.get(), soft);
  check_expr(e->c.get(), soft);
  for (const auto& x : e->items) check_expr(x.get(), soft);
  for (const auto& kv : e->kwargs) check_expr(kv.second.get(), soft);
}

// `soft` mirrors jinja2's soft frames: inside an if statement or inline if, but not in a
// nested loop body, macro, filter block, set block or with body (those get inner frames).
void check_body(const Body& body, bool soft) {
  for (const NodePtr& n : body) {
    switch (n->kind) {
      case NodeKind::kText:
      case NodeKind::kBreak:
      case NodeKind::kContinue: break;
      case NodeKind::kOutput:
      case NodeKind::kSet: check_expr(n->expr.get(), soft); break;
      case NodeKind::kIf:
        for (const auto& br : n->branches) {
          check_expr(br.first.get(), true);
          check_body(br.second, true);
        }
        break;
      case NodeKind::kFor:
        check_expr(n->expr.get(), soft);
        check_expr(n->cond.get(), false);
        check_body(n->body, false);
        check_body(n->else_body, false);
        break;
      case NodeKind::kSetBlock:
      case NodeKind::kFilterBlock:
        check_expr(n->expr.get(), false);
        check_body(n->body, false);
        break;
      case NodeKind::kMacro:
        for (const auto& p : n->params) check_expr(p.second.get(), false);
        check_body(n->body, false);
        break;
      case NodeKind::kWith:
        for (const auto& p : n->params) check_expr(p.second.get(), soft);
        check_body(n->body, false);
        break;
    }
  }
}

}  // namespace

void check_program(const Program& program) { check_body(program.body, false); }

std::string render_program(const Program& program, const std::vector<std::pair<std::string, Value>>& variables,
                           const std::tm& now, const RenderLimits& limits) {
  Budget budget;
  budget.max_value_bytes = limits.max_value_bytes;
  budget.max_alloc_bytes = limits.max_alloc_bytes;
  budget.max_steps = limits.max_steps;
  BudgetScope scope(&budget);
  Interpreter in(now, limits);
  return in.run(program, variables);
}

}  // namespace sn::engine::jinja
