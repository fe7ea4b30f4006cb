// See args.h.
#include "supernode/base/args.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace sn {

Args::Args(std::string command, std::string usage, std::string summary, std::vector<OptionSpec> specs)
    : command_(std::move(command)), usage_(std::move(usage)), summary_(std::move(summary)), specs_(std::move(specs)) {}

const OptionSpec* Args::find(const std::string& name) const {
  for (const OptionSpec& s : specs_) {
    for (const std::string& n : s.names) {
      if (n == name) return &s;
    }
  }
  return nullptr;
}

Status Args::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      help_ = true;
      continue;
    }
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) != 0))) {
      std::string inline_value;
      bool has_inline = false;
      if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
      const OptionSpec* spec = find(a);
      if (spec == nullptr) {
        return Status::invalid_argument(command_, "unknown option '" + a + "' (see supernode " + command_ + " --help)");
      }
      if (spec->value_name.empty()) {
        if (has_inline) return Status::invalid_argument(command_, "option '" + a + "' takes no value");
        values_.emplace(spec->names.front(), "1");
        continue;
      }
      if (!has_inline) {
        if (i + 1 >= argc) return Status::invalid_argument(command_, "option '" + a + "' needs a value (" + spec->value_name + ")");
        inline_value = argv[++i];
      }
      values_.emplace(spec->names.front(), inline_value);
      continue;
    }
    positional_.push_back(a);
  }
  return Status::ok();
}

std::string Args::help_text() const {
  std::string s = "usage: supernode " + command_ + " " + usage_ + "\n\n" + summary_ + "\n\noptions:\n";
  for (const OptionSpec& o : specs_) {
    std::string left = "  ";
    for (size_t i = 0; i < o.names.size(); ++i) left += (i ? ", " : "") + o.names[i];
    if (!o.value_name.empty()) left += " " + o.value_name;
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    s += left + o.help;
    if (!o.default_text.empty()) s += " (default: " + o.default_text + ")";
    s += "\n";
  }
  s += "  -h, --help                show this help\n";
  return s;
}

bool Args::has(const std::string& name) const {
  const OptionSpec* spec = find(name);
  return spec != nullptr && values_.count(spec->names.front()) > 0;
}

std::optional<std::string> Args::value(const std::string& name) const {
  const OptionSpec* spec = find(name);
  if (spec == nullptr) return std::nullopt;
  auto range = values_.equal_range(spec->names.front());
  if (range.first == range.second) return std::nullopt;
  auto last = range.second;
  --last;
  return last->second;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  const OptionSpec* spec = find(name);
  if (spec == nullptr) return out;
  auto range = values_.equal_range(spec->names.front());
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  std::optional<std::string> v = value(name);
  return v ? *v : fallback;
}

Result<long long> Args::integer(const std::string& name, long long fallback, long long lo, long long hi) const {
  std::optional<std::string> v = value(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE) {
    return Status::invalid_argument(command_, "option '" + name + "' expects an integer, got '" + *v + "'");
  }
  if (x < lo || x > hi) {
    return Status::invalid_argument(command_, "option '" + name + "' is " + *v + ", must be in [" + std::to_string(lo) +
                                                  ", " + std::to_string(hi) + "]");
  }
  return x;
}

Result<double> Args::number(const std::string& name, double fallback, double lo, double hi) const {
  std::optional<std::string> v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || !std::isfinite(x)) {
    return Status::invalid_argument(command_, "option '" + name + "' expects a number, got '" + *v + "'");
  }
  if (x < lo || x > hi) {
    return Status::invalid_argument(command_, "option '" + name + "' is " + *v + ", must be in [" + std::to_string(lo) +
                                                  ", " + std::to_string(hi) + "]");
  }
  return x;
}

}  // namespace sn
