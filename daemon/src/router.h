// The route table of supernoded's HTTP listeners, read top to bottom: method, path pattern,
// who may call it, the largest body it takes, and its handler. Patterns are literal
// segments and {name} segments ("/api/admin/keys/{key_id}"); a trailing "*" segment matches
// the rest of the path ("/assets/*"). The transport matches a request's line and headers
// against the table, checks the guard (an API key, or an admin session with its role and
// CSRF token) and the body's size, and only then reads the body and calls the handler.
//
//   Router r;
//   r.add({http::verb::get, "/v1/models", Guard::kTenantKey, ErrorStyle::kOpenAi, 0, models});
//   const Router::Match m = r.match(http::verb::get, "/v1/models");
//
// Thread safety: build before serving; match() is const and safe concurrently.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "http_exchange.h"

namespace sn::daemon {

enum class Guard {
  kNone,          // anyone
  kTenantKey,     // Authorization: Bearer <API key>
  kAdminSession,  // an admin session of any role; state-changing methods need the admin role
  kAdminOnly,     // an admin session with the admin role, whatever the method
  kAnySession,    // an admin session of any role, whatever the method (logout)
};

// How refusals before the handler (404, 401, 413, ...) are written.
enum class ErrorStyle { kOpenAi, kAdmin, kText };

struct Route {
  http::verb method = http::verb::get;
  std::string pattern;
  Guard guard = Guard::kNone;
  ErrorStyle errors = ErrorStyle::kOpenAi;
  size_t max_body = 0;  // 0: the server's limit
  Handler handler;
  std::string label;    // for metrics; the pattern when empty
};

class Router {
 public:
  void add(Route route);

  struct Match {
    const Route* route = nullptr;  // nullptr: no route (see path_known)
    bool path_known = false;       // some route has this path with another method: 405
    std::map<std::string, std::string> params;
    bool bad_escape = false;       // a {name} segment was not valid percent-encoding
    std::vector<std::string> allowed;  // the methods of the path, for 405's Allow header
  };
  [[nodiscard]] Match match(http::verb method, std::string_view path) const;
  [[nodiscard]] bool empty() const { return routes_.empty(); }

 private:
  struct Compiled {
    Route route;
    std::vector<std::string> segments;  // "{name}" for parameters, "*" for the rest
  };
  static bool match_one(const Compiled& c, const std::vector<std::string_view>& path,
                        std::map<std::string, std::string>& params, bool& bad_escape);
  std::vector<Compiled> routes_;
};

}  // namespace sn::daemon
