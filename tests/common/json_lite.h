// A minimal JSON reader for test fixtures (the jsonl reference files in ../shared): objects,
// arrays, numbers, strings with escapes, true/false/null. Aborts the test on malformed input
// (fixtures are trusted); production code never uses it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sn::testing {

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;

  const Json& operator[](const std::string& key) const;  // aborts when absent
  const Json& operator[](size_t i) const { return arr.at(i); }
  size_t size() const { return kind == Kind::kArray ? arr.size() : obj.size(); }
  bool has(const std::string& key) const { return obj.count(key) > 0; }
  std::vector<int> ints() const;
};

Json parse_json(std::string_view text);
// One value per non-empty line.
std::vector<Json> parse_jsonl(std::string_view text);

}  // namespace sn::testing
