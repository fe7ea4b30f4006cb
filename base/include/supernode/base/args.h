// A small command-line parser for our binaries (the `supernode` subcommands, supernoded): each declares its
// options (name, value or flag, help text), and gets --help and clear errors for unknown
// options, missing values and malformed numbers.
// Thread safety: used from main() only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "supernode/base/status.h"

namespace sn {

struct OptionSpec {
  std::vector<std::string> names;  // e.g. {"-m", "--model"}
  std::string value_name;          // empty for a flag
  std::string help;
  std::string default_text;        // shown in --help
};

class Args {
 public:
  Args(std::string command, std::string usage, std::string summary, std::vector<OptionSpec> specs);

  // Parses argv[first..]. Returns ok, or an error naming the offending argument.
  // help_requested() tells whether --help/-h was given.
  [[nodiscard]] Status parse(int argc, char** argv, int first);
  [[nodiscard]] bool help_requested() const { return help_; }
  [[nodiscard]] std::string help_text() const;

  [[nodiscard]] bool has(const std::string& name) const;
  [[nodiscard]] std::optional<std::string> value(const std::string& name) const;
  [[nodiscard]] std::string str(const std::string& name, const std::string& fallback) const;
  [[nodiscard]] Result<long long> integer(const std::string& name, long long fallback, long long lo, long long hi) const;
  [[nodiscard]] Result<double> number(const std::string& name, double fallback, double lo, double hi) const;
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
  // Every value given for a repeatable option, in order.
  [[nodiscard]] std::vector<std::string> all(const std::string& name) const;

 private:
  const OptionSpec* find(const std::string& name) const;

  std::string command_;
  std::string usage_;
  std::string summary_;
  std::vector<OptionSpec> specs_;
  std::multimap<std::string, std::string> values_;  // keyed by the spec's first name
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace sn
