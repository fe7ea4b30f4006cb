// The route table (router.h) and the URL decoding its handlers use.
#include "router.h"

#include <algorithm>

namespace sn::daemon {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  if (!path.empty() && path[0] == '/') i = 1;
  while (i <= path.size()) {
    const size_t slash = path.find('/', i);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    out.push_back(path.substr(i, end - i));
    if (slash == std::string_view::npos) break;
    i = slash + 1;
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool percent_decode(std::string_view in, bool query, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && query) {
      c = ' ';
    }
    if (c == '\0') return false;
    out.push_back(c);
  }
  return true;
}

bool parse_query(std::string_view query, std::map<std::string, std::string>& out) {
  size_t i = 0;
  while (i < query.size()) {
    const size_t amp = std::min(query.find('&', i), query.size());
    const std::string_view pair = query.substr(i, amp - i);
    i = amp + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string key, value;
    if (!percent_decode(pair.substr(0, eq), true, key)) return false;
    if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), true, value)) return false;
    out[key] = std::move(value);
  }
  return true;
}

void Router::add(Route route) {
  Compiled c;
  for (std::string_view s : split_path(route.pattern)) c.segments.emplace_back(s);
  if (route.label.empty()) route.label = route.pattern;
  c.route = std::move(route);
  routes_.push_back(std::move(c));
}

bool Router::match_one(const Compiled& c, const std::vector<std::string_view>& path,
                       std::map<std::string, std::string>& params, bool& bad_escape) {
  const bool rest = !c.segments.empty() && c.segments.back() == "*";
  const size_t fixed = rest ? c.segments.size() - 1 : c.segments.size();
  if (rest ? path.size() < fixed : path.size() != fixed) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < fixed; ++i) {
    const std::string& seg = c.segments[i];
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      if (path[i].empty()) return false;
      std::string value;
      if (!percent_decode(path[i], false, value)) {
        bad_escape = true;
        return false;
      }
      found[seg.substr(1, seg.size() - 2)] = std::move(value);
    } else if (seg != path[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

Router::Match Router::match(http::verb method, std::string_view path) const {
  Match m;
  const std::vector<std::string_view> parts = split_path(path);
  for (const Compiled& c : routes_) {
    std::map<std::string, std::string> params;
    bool bad = false;
    if (!match_one(c, parts, params, bad)) {
      m.bad_escape = m.bad_escape || bad;
      continue;
    }
    const bool same = c.route.method == method || (method == http::verb::head && c.route.method == http::verb::get);
    if (same && m.route == nullptr) {
      m.route = &c.route;
      m.params = std::move(params);
    }
    m.path_known = true;
    const std::string name(http::to_string(c.route.method));
    if (std::find(m.allowed.begin(), m.allowed.end(), name) == m.allowed.end()) m.allowed.push_back(name);
  }
  return m;
}

}  // namespace sn::daemon
