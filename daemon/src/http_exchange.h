// What an HTTP handler of supernoded sees: the request, who made it (a tenant's key or an
// admin session, checked by the router before the body was read), the path's parameters,
// and a Responder that writes the answer whole or as a stream of chunks (server-sent
// events) over whichever stream the connection has (plain TCP or TLS). The transport
// (server.cpp) implements Responder; the API families (openai_api.cpp, admin_api.cpp,
// web_assets.cpp) only see these types.
// Thread safety: an Exchange and its Responder belong to one connection's strand.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "supernode/storage/state_store.h"

namespace sn::daemon {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using HttpRequest = http::request<http::string_body>;

// A whole response. Coroutines here take no temporaries as arguments (GCC 12 destroys some
// temporaries of a co_await full-expression too early): fill a named Reply, then
// co_await out.send(reply).
struct Reply {
  http::status status = http::status::ok;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // the connection cannot go on after this answer
};

// An admin session of the web UI (admin_api.cpp owns the table).
struct AdminSession {
  std::string id;  // the cookie's value
  std::string username;
  std::string role;  // "admin" or "auditor"
  std::string csrf_token;
};

// Writes the answer of one request. Every method returns false when the connection broke;
// the handler then stops writing and returns false.
class Responder {
 public:
  virtual ~Responder() = default;
  [[nodiscard]] virtual net::awaitable<bool> send(const Reply& reply) = 0;
  // A chunked response: status and headers of `head` (its body is ignored), then chunks.
  [[nodiscard]] virtual net::awaitable<bool> begin_stream(const Reply& head) = 0;
  [[nodiscard]] virtual net::awaitable<bool> write_chunk(const std::string& data) = 0;
  [[nodiscard]] virtual net::awaitable<bool> end_stream() = 0;
  // Calls `on_hangup` (on the connection's strand) when the client closes the connection
  // while the answer is computed; data from the client ends the watch. stop_watching()
  // before writing again after a long wait.
  virtual void watch_hangup(std::function<void()> on_hangup) = 0;
  virtual void stop_watching() = 0;
  [[nodiscard]] virtual net::any_io_executor executor() = 0;
  // Whether the server is stopping (long streams end).
  [[nodiscard]] virtual bool stopping() const = 0;
};

struct Exchange {
  const HttpRequest& request;
  Responder& out;
  std::string path;                           // without the query
  std::map<std::string, std::string> params;  // from the route's {name} segments, decoded
  std::map<std::string, std::string> query;   // decoded
  std::string client_address;
  bool secure = false;                        // TLS, or plain HTTP on loopback
  bool tls = false;
  std::optional<storage::Principal> tenant;   // for routes guarded by an API key
  std::optional<AdminSession> admin;          // for routes guarded by an admin session
};

// A handler answers one request; false when the connection must close.
using Handler = std::function<net::awaitable<bool>(Exchange&)>;

// Runs `work` on `pool` (blocking work: SQLite, file copies, model loads) and resumes on the
// caller's strand with its result. `work` must not touch the Exchange.
template <class T>
net::awaitable<T> run_blocking(net::thread_pool& pool, std::function<T()> work) {
  struct State {
    explicit State(net::any_io_executor ex) : timer(ex) {}
    net::steady_timer timer;
    std::optional<T> result;
    bool done = false;  // strand only
  };
  auto st = std::make_shared<State>(co_await net::this_coro::executor);
  net::post(pool, [st, work = std::move(work)] {
    T r = work();
    net::post(st->timer.get_executor(), [st, r = std::move(r)]() mutable {
      st->result.emplace(std::move(r));
      st->done = true;
      st->timer.cancel();
    });
  });
  while (!st->done) {
    st->timer.expires_at(net::steady_timer::time_point::max());
    boost::system::error_code ec;
    co_await st->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  co_return std::move(*st->result);
}

// Percent-decoding of a path segment or query value ('+' is a space only in queries);
// false on a malformed escape or a NUL byte.
[[nodiscard]] bool percent_decode(std::string_view in, bool query, std::string& out);
// key=value&... of a target's query string, decoded; false on a malformed one.
[[nodiscard]] bool parse_query(std::string_view query, std::map<std::string, std::string>& out);

}  // namespace sn::daemon
