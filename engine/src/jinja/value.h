// The Jinja interpreter's value model: Python's types as templates see them (None, bool,
// int, float, str, list, tuple, dict in insertion order), jinja2's Undefined, callables
// (builtins, bound methods, macros) and attribute objects (namespace(), loop).
// Also Python's str()/repr() and json.dumps() of values, UTF-8 helpers, since strings
// index by code point as Python's do, and the per-render Budget that bounds the work,
// memory and nesting a template can cause.
// Used only inside engine/src/jinja. Errors are thrown as JinjaError and caught at the
// ChatTemplate boundary; nothing throws across the room's face.
// Thread safety: values are not shared between renders; no synchronization. The budget
// in force is per thread (BudgetScope).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sn::engine::jinja {

// A render or parse failure. `raised` marks raise_exception(msg): what() is then exactly msg.
struct JinjaError : std::runtime_error {
  enum class Kind { kTemplate, kRaised, kLimit };
  JinjaError(Kind k, const std::string& msg, int line_no = 0) : std::runtime_error(msg), kind(k), line(line_no) {}
  Kind kind;
  int line;
};
[[noreturn]] void fail(const std::string& msg);  // kTemplate
[[noreturn]] void fail_type(const std::string& msg);  // "TypeError: msg"
[[noreturn]] void fail_limit(const std::string& msg);  // kLimit (resource_exhausted)

// ----- the budget of one render -----
//
// A template is untrusted input (it comes with the GGUF), so every operation whose cost
// grows with a value the template controls charges the budget of the render in force:
// steps of work (one per statement, expression, container element visited or call, and
// one per kBytesPerStep bytes scanned or written), the size of each value created, and
// the running total of bytes created. Sizes are checked before the memory is allocated
// wherever an operation can multiply its input (repetition, replace, indent, ...).
// Passing a bound throws JinjaError kLimit. With no budget in force (parsing, converting
// the inputs) nothing is charged.
struct Budget {
  size_t max_value_bytes = 16u << 20;     // one string, or one container (see value_bytes)
  uint64_t max_alloc_bytes = 256u << 20;  // all values created, summed
  uint64_t max_steps = 10'000'000;
  uint64_t steps = 0;
  uint64_t alloc_bytes = 0;
};

// Puts `budget` in force on this thread until destroyed (restoring the previous one).
// REQUIRES: `budget` outlives the scope.
class BudgetScope {
 public:
  explicit BudgetScope(Budget* budget);
  ~BudgetScope();
  BudgetScope(const BudgetScope&) = delete;
  BudgetScope& operator=(const BudgetScope&) = delete;

 private:
  Budget* saved_;
};

constexpr size_t kBytesPerStep = 32;
// Containers (lists, tuples, dicts and the values they hold) nest at most this deep, so
// that printing, comparing and destroying them cannot exhaust the stack. jinja2 has
// Python's recursion limit; JSON inputs are limited to 512 levels too.
constexpr uint32_t kMaxValueDepth = 512;

void budget_step(uint64_t n = 1);  // n units of work
void budget_scan(size_t bytes);    // work proportional to `bytes` read or copied
// A value of `bytes` bytes is being built by `what`: fails when it is larger than one
// value may be. Cheap; call it as a result grows.
void budget_check_size(size_t bytes, const char* what);
// A value of `bytes` bytes is created: the size check, the running total and the work.
void budget_allocate(size_t bytes, const char* what);
// A container `depth` levels deep is created by `what`.
void budget_check_depth(uint32_t depth, const char* what);
// Size arithmetic that fails (kLimit, naming `what`) instead of wrapping around.
size_t size_add(size_t a, size_t b, const char* what);
size_t size_mul(size_t a, size_t b, const char* what);

struct Value;
using List = std::vector<Value>;
struct Dict;
struct Callable;
struct Object;

enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict, kCallable, kObject };

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  uint32_t depth = 0;  // containers nested in this value, itself included (0: scalar)
  int64_t i = 0;
  double f = 0;
  std::string s;  // string, or for undefined the reason used in error messages
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Callable> fn;
  std::shared_ptr<Object> obj;

  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List v = {});
  static Value make_tuple(List v);
  static Value make_dict();
  // A dict of `items` (keys already unique), with its depth computed and its size charged.
  static Value make_dict(std::vector<std::pair<Value, Value>> items);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_seq() const { return kind == Kind::kList || kind == Kind::kTuple; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_dict() const { return kind == Kind::kDict; }
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The argument at `index` or named `name`; nullptr when not given.
  const Value* get(size_t index, std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// namespace() objects (mutable attributes) and loop objects (read-only; their attributes
// are computed from the loop's items and position on access).
struct Object {
  std::string type_name;
  bool mutable_attrs = false;
  Dict attrs;
  std::shared_ptr<const std::vector<Value>> loop_items;  // set for `loop`
  int64_t loop_index = 0;                                // 0-based position
};

Value make_callable(std::string name, std::function<Value(CallArgs&)> fn);

// The bytes the budget counts for `v`: a string's bytes; for a container, sizeof(Value)
// per element (two per dict entry) plus the bytes of the strings it holds directly
// (nested containers are shared, not copied, so they count once, when created).
size_t value_bytes(const Value& v);

// Python semantics.
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
const char* type_name(const Value& v);  // Python's type name: 'NoneType', 'str', ...
std::string to_str(const Value& v);      // str(v); undefined prints empty
std::string repr(const Value& v);        // repr(v)
std::string float_repr(double d);
[[noreturn]] void fail_undefined(const Value& v);  // raises UndefinedError for v

struct JsonOptions {
  std::optional<std::string> indent;  // indentation unit; nullopt: single line
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonOptions& opt);

// The first occurrence of `needle` in `hay` at or after `from` (npos if none), in time
// linear in the bytes searched (std::string::find is quadratic in the worst case); the
// bytes searched are charged to the budget.
size_t str_find(std::string_view hay, std::string_view needle, size_t from = 0);

// UTF-8 <-> code points (invalid bytes become U+FFFD).
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
size_t utf8_length(std::string_view s);
bool is_py_space(char32_t c);  // Python's str.isspace()
std::string py_strip(std::string_view s, const std::u32string* chars, bool left, bool right);
// Python's str.upper()/lower() for Latin, Greek, Cyrillic and fullwidth letters (the
// scripts chat templates meet); other code points pass through unchanged.
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
char32_t py_upper_cp(char32_t c);
char32_t py_lower_cp(char32_t c);
bool py_is_cased(char32_t c);

}  // namespace sn::engine::jinja
