// The HTTP server (server.h): one C++20 coroutine per connection on a strand of a
// multi-threaded io_context. A completion request is handed to its ModelHost; the engine
// thread's events come back through a Pending bridge (a queue plus a timer the coroutine
// sleeps on, both on the connection's strand), and go out as one JSON body or as SSE chunks.
// A streaming client that goes away fails the next write, which cancels its request.
#include "supernode/daemon/server.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/daemon/log.h"
#include "supernode/daemon/metrics.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/rate_limiter.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

namespace sn::daemon {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::ordered_json;  // keys in insertion order, as OpenAI sends them
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// An OpenAI-style error: status code plus {"error": {message, type, param, code}}.
struct ApiError {
  http::status status = http::status::bad_request;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

std::string error_body(const ApiError& e) {
  json j = {{"error",
             {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
  return j.dump();
}

ApiError from_status(const Status& s) {
  ApiError e;
  e.message = s.message();
  switch (s.code()) {
    case Status::Code::kInvalidArgument: e.status = http::status::bad_request; break;
    case Status::Code::kNotFound: e.status = http::status::not_found; e.code = "not_found"; break;
    case Status::Code::kResourceExhausted:
      e.status = http::status::too_many_requests;
      e.type = "rate_limit_error";
      e.code = "server_busy";
      break;
    default: e.status = http::status::internal_server_error; e.type = "server_error"; break;
  }
  return e;
}

std::string random_id(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(rng()));
  return buf;
}

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t wall_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// OpenAI's rate-limit headers (reset as a duration such as "1.5s").
std::vector<std::pair<std::string, std::string>> ratelimit_headers(const Admission& a) {
  std::vector<std::pair<std::string, std::string>> h;
  auto secs = [](double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3gs", std::max(0.0, s));
    return std::string(b);
  };
  if (a.headers.limit_requests > 0) {
    h.emplace_back("x-ratelimit-limit-requests", std::to_string(a.headers.limit_requests));
    h.emplace_back("x-ratelimit-remaining-requests", std::to_string(a.headers.remaining_requests));
    h.emplace_back("x-ratelimit-reset-requests", secs(a.headers.reset_requests_s));
  }
  if (a.headers.limit_tokens > 0) {
    h.emplace_back("x-ratelimit-limit-tokens", std::to_string(a.headers.limit_tokens));
    h.emplace_back("x-ratelimit-remaining-tokens", std::to_string(a.headers.remaining_tokens));
    h.emplace_back("x-ratelimit-reset-tokens", secs(a.headers.reset_tokens_s));
  }
  return h;
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* finish_name(HostFinish f) {
  switch (f) {
    case HostFinish::kStop: return "stop";
    case HostFinish::kLength: return "length";
    case HostFinish::kContentFilter: return "content_filter";
    default: return nullptr;
  }
}

// Events of one request, handed from the engine thread to the connection's strand.
struct Pending {
  explicit Pending(net::any_io_executor ex) : timer(ex) {}
  std::mutex mu;
  std::deque<std::pair<int, HostEvent>> events;  // (choice index, event); guarded by mu
  net::steady_timer timer;       // strand only
  bool notified = false;         // strand only
  bool hung_up = false;          // strand only: the client closed its connection
};

constexpr int64_t kMaxChoices = 16;      // n
constexpr int64_t kMaxTopLogprobs = 20;  // logprobs / top_logprobs

// A parsed, validated /v1/completions request.
struct CompletionCall {
  bool chat = false;  // /v1/chat/completions
  std::shared_ptr<ModelHost> host;
  HostRequest request;
  storage::Limits tenant_limits;
  bool stream = false;
  bool include_usage = false;
  int n = 1;             // choices
  bool seeded = false;   // choice i draws with seed + i
  std::string user;      // the client's end-user id, for logs only
  std::string prompt_text;  // the prompt or messages as JSON, only when prompt logging is on
};

// OpenAI's logprobs objects. Completions: {tokens, token_logprobs, top_logprobs, text_offset};
// chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
json bytes_json(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json chat_logprobs(const std::vector<HostLogprob>& lps) {
  json content = json::array();
  for (const HostLogprob& lp : lps) {
    json top = json::array();
    for (const auto& [tok, v] : lp.top) top.push_back({{"token", tok}, {"logprob", v}, {"bytes", bytes_json(tok)}});
    content.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"bytes", bytes_json(lp.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

json completion_logprobs(const std::vector<HostLogprob>& lps, int64_t& text_offset) {
  json tokens = json::array(), values = json::array(), tops = json::array(), offsets = json::array();
  for (const HostLogprob& lp : lps) {
    tokens.push_back(lp.token);
    values.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [tok, v] : lp.top) {
      if (!top.contains(tok)) top[tok] = v;
    }
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += static_cast<int64_t>(lp.token.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

template <class T>
bool get_number(const json& body, const char* name, T& out, double lo, double hi, ApiError& err) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number()) {
    err = {http::status::bad_request, std::string("'") + name + "' must be a number", "invalid_request_error", name};
    return false;
  }
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    err = {http::status::bad_request,
           std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump(),
           "invalid_request_error", name};
    return false;
  }
  if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      err = {http::status::bad_request, std::string("'") + name + "' must be an integer", "invalid_request_error", name};
      return false;
    }
    out = static_cast<T>(it->get<int64_t>());
  } else {
    out = static_cast<T>(v);
  }
  return true;
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation)
      : options_(std::move(options)),
        state_(state),
        models_(models),
        moderation_(moderation),
        ioc_(options_.io_threads),
        acceptor_(ioc_) {}

  void begin_drain() { draining_.store(true); }

  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(calls_mu_);
    return calls_cv_.wait_for(lock, timeout, [&] { return calls_ == 0; });
  }

  Status start(uint16_t& port) {
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
      if (options_.tls_cert.empty() || options_.tls_key.empty()) {
        return Status::invalid_argument("TLS", "both a certificate and its key are needed");
      }
      ssl_.emplace(net::ssl::context::tls_server);
      // TLS 1.2 and 1.3 only.
      ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                        net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                        net::ssl::context::single_dh_use);
      boost::system::error_code ec;
      ssl_->use_certificate_chain_file(options_.tls_cert, ec);
      if (ec) return Status::io_error("TLS certificate " + options_.tls_cert, ec.message());
      ssl_->use_private_key_file(options_.tls_key, net::ssl::context::pem, ec);
      if (ec) return Status::io_error("TLS key " + options_.tls_key, ec.message());
    }
    if (options_.listen_fd >= 0) {
      // Socket activation: systemd bound and listens already.
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      if (::getsockname(options_.listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return Status::io_error("activated socket", std::strerror(errno));
      }
      boost::system::error_code ec;
      acceptor_.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), options_.listen_fd, ec);
      if (ec) return Status::io_error("activated socket", ec.message());
      port = acceptor_.local_endpoint().port();
      net::co_spawn(ioc_, accept_loop(), net::detached);
      start_io_threads();
      return Status::ok();
    }
    const size_t colon = options_.listen.rfind(':');
    if (colon == std::string::npos) {
      return Status::invalid_argument("listen address '" + options_.listen + "'", "expected HOST:PORT");
    }
    std::string host = options_.listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port_text = options_.listen.substr(colon + 1);
    char* end = nullptr;
    const long p = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || p < 0 || p > 65535) {
      return Status::invalid_argument("listen address '" + options_.listen + "'", "bad port '" + port_text + "'");
    }
    boost::system::error_code ec;
    const net::ip::address addr = net::ip::make_address(host, ec);
    if (ec) return Status::invalid_argument("listen address '" + options_.listen + "'", "bad host '" + host + "'");
    const tcp::endpoint ep(addr, static_cast<uint16_t>(p));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Status::io_error("listen on " + options_.listen, ec.message());
    port = acceptor_.local_endpoint().port();
    net::co_spawn(ioc_, accept_loop(), net::detached);
    start_io_threads();
    return Status::ok();
  }

  // The I/O threads run at a lower CPU priority (nice io_nice) than the engines: they need
  // little CPU, and on a box whose cores all compute, a woken I/O thread that preempts a
  // compute thread stalls the whole parallel section it belongs to.
  void start_io_threads() {
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] {
        if (options_.io_nice > 0) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), options_.io_nice);
        ioc_.run();
      });
    }
  }

  void stop() {
    if (stopped_.exchange(true)) return;
    net::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  net::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket(net::make_strand(ioc_));
      co_await acceptor_.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (!acceptor_.is_open()) co_return;
        continue;  // e.g. too many open files: keep serving the connections we have
      }
      const net::any_io_executor ex = socket.get_executor();
      if (ssl_) {
        net::co_spawn(ex, session_tls(std::move(socket)), net::detached);
      } else {
        net::co_spawn(ex, session_plain(std::move(socket)), net::detached);
      }
    }
  }

  net::awaitable<void> session_plain(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream);
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    // Lingering close: read and drop what the client still sends (the rest of a body we
    // refused with 413, say) for a short while, so that closing does not reset the
    // connection before the client has read our answer.
    std::array<char, 16384> sink;
    size_t drained = 0;
    stream.expires_after(std::chrono::seconds(2));
    while (!ec && drained < (16u << 20)) {
      drained += co_await stream.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
    }
  }

  net::awaitable<void> session_tls(tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ssl_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
    boost::system::error_code ec;
    co_await stream.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;  // not TLS, an old protocol version, or gone: nothing to answer
    co_await serve(stream);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  }

  // The request loop of one connection (keep-alive), over either stream.
  template <class Stream>
  net::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options_.max_body_bytes);
      parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
      boost::system::error_code ec;
      co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
          ec == net::error::connection_reset || ec == net::error::operation_aborted || ec == net::ssl::error::stream_truncated) {
        break;
      }
      if (ec) {
        // Malformed request line or headers, or over a limit: answer and close.
        ApiError e;
        e.status = ec == http::error::body_limit    ? http::status::payload_too_large
                   : ec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                     : http::status::bad_request;
        e.message = "could not read the HTTP request: " + ec.message();
        Response res{e.status, 11};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(false);
        res.body() = error_body(e);
        res.prepare_payload();
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
        co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
        break;
      }
      Request req = parser.release();
      beast::get_lowest_layer(stream).expires_never();  // a request may generate for a long time
      const bool keep = co_await handle(stream, req);
      if (!keep || !req.keep_alive()) break;
    }
  }

  // A whole response to write. Coroutines here take no temporaries as arguments (GCC 12
  // destroys some temporaries of a co_await full-expression too early): callers fill a
  // named Reply and co_await send(stream, req, reply).
  struct Reply {
    http::status status = http::status::ok;
    std::string body;
    const char* content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
  };

  static Reply error_reply(const ApiError& e) { return Reply{e.status, error_body(e), "application/json"}; }

  // Writes a whole response; false when the connection broke.
  template <class Stream>
  net::awaitable<bool> send(Stream& stream, const Request& req, const Reply& reply) {
    Response res{reply.status, req.version()};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(req.keep_alive());
    res.body() = reply.body;
    res.prepare_payload();
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    beast::get_lowest_layer(stream).expires_never();
    co_return !ec;
  }

  // Returns whether the connection may be kept.
  template <class Stream>
  net::awaitable<bool> handle(Stream& stream, const Request& req) {
    const std::string target(req.target().data(), req.target().size());
    const std::string path = target.substr(0, target.find('?'));
    std::optional<storage::ApiKeyRecord> key;
    Reply reply;
    if (path == "/healthz" || path == "/readyz") {
      // Ready: serving at least one model and not draining.
      const bool ready = path == "/healthz" || (!draining_.load() && !models_.list().empty());
      reply = req.method() != http::verb::get ? error_reply(method_not_allowed())
              : ready ? Reply{http::status::ok, "ok\n", "text/plain"}
                      : Reply{http::status::service_unavailable, draining_.load() ? "draining\n" : "no model loaded\n",
                              "text/plain"};
    } else if (path.rfind("/v1/", 0) != 0 && path != "/metrics") {
      reply = error_reply({http::status::not_found, "no route " + path, "invalid_request_error"});
    } else if (ApiError e; !authenticate(req, key, e)) {
      reply = error_reply(e);
    } else if (path == "/metrics") {
      reply = req.method() == http::verb::get
                  ? Reply{http::status::ok, render_metrics(), "text/plain; version=0.0.4; charset=utf-8"}
                  : error_reply(method_not_allowed());
    } else if (path == "/v1/models") {
      reply = req.method() == http::verb::get ? Reply{http::status::ok, models_body(*key), "application/json"}
                                              : error_reply(method_not_allowed());
    } else if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (req.method() == http::verb::post) {
        const storage::ApiKeyRecord& k = *key;
        const bool chat = path == "/v1/chat/completions";
        const bool keep = co_await completions(stream, req, k, chat);
        co_return keep;
      }
      reply = error_reply(method_not_allowed());
    } else {
      reply = error_reply({http::status::not_found, "no route " + path, "invalid_request_error"});
    }
    if (static_cast<int>(reply.status) >= 400) {
      // Known routes only as label values: arbitrary paths must not grow the label set.
      const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/v1/models" ||
                         path == "/v1/completions" || path == "/v1/chat/completions";
      metrics_.request_refused(known ? path : "other", static_cast<int>(reply.status));
    }
    const bool ok = co_await send(stream, req, reply);
    co_return ok;
  }

  std::string render_metrics() const {
    const std::vector<std::shared_ptr<ModelHost>> hosts = models_.list();
    std::vector<ModelHost*> raw;
    for (const std::shared_ptr<ModelHost>& h : hosts) raw.push_back(h.get());
    return metrics_.render(raw);
  }

  static ApiError method_not_allowed() {
    return {http::status::method_not_allowed, "method not allowed on this route", "invalid_request_error"};
  }

  bool authenticate(const Request& req, std::optional<storage::ApiKeyRecord>& key, ApiError& err) {
    err = {http::status::unauthorized, "", "invalid_request_error", "", "invalid_api_key"};
    auto it = req.find(http::field::authorization);
    if (it == req.end()) {
      err.message = "missing API key: send 'Authorization: Bearer <key>'";
      return false;
    }
    const std::string_view v(it->value().data(), it->value().size());
    if (v.substr(0, 7) != "Bearer ") {
      err.message = "the Authorization header must be 'Bearer <key>'";
      return false;
    }
    Result<std::optional<storage::ApiKeyRecord>> r = state_.authenticate(v.substr(7));
    if (!r.ok()) {
      err = from_status(r.status());
      return false;
    }
    if (!*r) {
      err.message = "invalid API key";  // never echo the key
      return false;
    }
    key = **r;
    return true;
  }

  bool allowed(const storage::ApiKeyRecord& key, const std::string& model) const {
    return key.limits.models.empty() ||
           std::find(key.limits.models.begin(), key.limits.models.end(), model) != key.limits.models.end();
  }

  std::string models_body(const storage::ApiKeyRecord& key) const {
    json data = json::array();
    for (const std::shared_ptr<ModelHost>& h : models_.list()) {
      if (!allowed(key, h->id())) continue;
      data.push_back({{"id", h->id()}, {"object", "model"}, {"created", h->created_s()}, {"owned_by", "supernode"}});
    }
    return json{{"object", "list"}, {"data", data}}.dump();
  }

  // Validates the body of a /v1/completions request into a call; false with `err` set.
  bool parse_completion(const Request& req, const storage::ApiKeyRecord& key, CompletionCall& call, ApiError& err) {
    json body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      err = {http::status::bad_request, "the body must be a JSON object", "invalid_request_error"};
      return false;
    }
    auto model = body.find("model");
    if (model == body.end() || !model->is_string()) {
      err = {http::status::bad_request, "'model' is required and must be a string", "invalid_request_error", "model"};
      return false;
    }
    const std::string model_id = model->get<std::string>();
    std::shared_ptr<ModelHost> h = models_.find(model_id);
    if (h == nullptr || !allowed(key, model_id)) {
      err = {http::status::not_found, "the model '" + model_id + "' does not exist", "invalid_request_error", "model",
             "model_not_found"};
      return false;
    }
    call.host = std::move(h);
    const engine::Tokenizer& tok = call.host->model().tokenizer();
    if (call.chat) {
      if (!parse_messages(body, call, err)) return false;
    } else {
      auto prompt = body.find("prompt");
      if (prompt == body.end() || prompt->is_null()) {
        err = {http::status::bad_request, "'prompt' is required", "invalid_request_error", "prompt"};
        return false;
      }
      if (prompt->is_string()) {
        call.request.prompt = tok.encode(prompt->get<std::string>(), {.add_special = true, .parse_special = false});
      } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
        for (const json& t : *prompt) {
          if (!t.is_number_integer()) {
            err = {http::status::bad_request, "'prompt' token arrays must hold integers", "invalid_request_error", "prompt"};
            return false;
          }
          call.request.prompt.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
      } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
        call.request.prompt = tok.encode((*prompt)[0].get<std::string>(), {.add_special = true, .parse_special = false});
      } else {
        err = {http::status::bad_request, "'prompt' must be a string, one string in an array, or an array of token ids",
               "invalid_request_error", "prompt"};
        return false;
      }
    }
    if (call.request.prompt.empty()) {
      err = {http::status::bad_request, "'prompt' is empty", "invalid_request_error", "prompt"};
      return false;
    }
    // Content moderation: the prompt as the model sees it, then the output terms to watch.
    const std::shared_ptr<const ModerationTerms> terms = moderation_.snapshot();
    if (!terms->input.empty() && terms->input_hit(tok.decode(call.request.prompt, /*special=*/true))) {
      err = {http::status::bad_request, "the prompt was refused by content moderation", "invalid_request_error",
             call.chat ? "messages" : "prompt", "content_filter"};
      log(LogLevel::kInfo, "prompt refused by content moderation",
          {.request_id = std::nullopt, .tenant = key.tenant, .model = model_id, .key_id = key.key_id, .extra = {}});
      return false;
    }
    call.request.filter_terms = terms->output;
    int64_t n = 1;
    if (!get_number(body, "n", n, 1, kMaxChoices, err)) return false;
    call.n = static_cast<int>(n);
    if (auto user = body.find("user"); user != body.end() && !user->is_null()) {
      if (!user->is_string() || user->get<std::string>().size() > 256) {
        err = {http::status::bad_request, "'user' must be a string of at most 256 bytes", "invalid_request_error", "user"};
        return false;
      }
      call.user = user->get<std::string>();
    }
    engine::SamplingParams& sp = call.request.sampling;
    sp.temperature = 1.0f;  // OpenAI's defaults
    sp.top_p = 1.0f;
    sp.top_k = 0;
    sp.min_p = 0.0f;
    int64_t max_tokens = 16;
    int64_t seed = -1;
    if (call.chat && body.contains("max_completion_tokens")) {
      if (!get_number(body, "max_completion_tokens", max_tokens, 1, call.host->context(), err)) return false;
    }
    if (!get_number(body, "max_tokens", max_tokens, 1, call.host->context(), err) ||
        !get_number(body, "temperature", sp.temperature, 0, 2, err) || !get_number(body, "top_p", sp.top_p, 0, 1, err) ||
        !get_number(body, "presence_penalty", sp.presence_penalty, -2, 2, err) ||
        !get_number(body, "frequency_penalty", sp.frequency_penalty, -2, 2, err) ||
        !get_number(body, "seed", seed, -9.2e18, 9.2e18, err)) {
      return false;
    }
    if (sp.top_p == 0.0f) sp.top_p = 1e-6f;  // OpenAI accepts 0: the most likely token
    if (seed >= 0) sp.seed = static_cast<uint64_t>(seed);
    call.seeded = seed >= 0;
    call.request.max_tokens = static_cast<int32_t>(max_tokens);
    if (auto stop = body.find("stop"); stop != body.end() && !stop->is_null()) {
      if (stop->is_string()) {
        call.request.stop.push_back(stop->get<std::string>());
      } else if (stop->is_array() && stop->size() <= 4) {
        for (const json& s : *stop) {
          if (!s.is_string()) {
            err = {http::status::bad_request, "'stop' must hold strings", "invalid_request_error", "stop"};
            return false;
          }
          call.request.stop.push_back(s.get<std::string>());
        }
      } else {
        err = {http::status::bad_request, "'stop' must be a string or an array of up to 4 strings",
               "invalid_request_error", "stop"};
        return false;
      }
      std::erase(call.request.stop, std::string());
    }
    // vLLM's extension, for benchmarks: generate max_tokens even past end-of-sequence.
    if (auto ie = body.find("ignore_eos"); ie != body.end() && !ie->is_null()) {
      if (!ie->is_boolean()) {
        err = {http::status::bad_request, "'ignore_eos' must be a boolean", "invalid_request_error", "ignore_eos"};
        return false;
      }
      call.request.ignore_eos = ie->get<bool>();
    }
    if (auto st = body.find("stream"); st != body.end() && !st->is_null()) {
      if (!st->is_boolean()) {
        err = {http::status::bad_request, "'stream' must be a boolean", "invalid_request_error", "stream"};
        return false;
      }
      call.stream = st->get<bool>();
    }
    if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
      auto iu = so->find("include_usage");
      call.include_usage = iu != so->end() && iu->is_boolean() && iu->get<bool>();
    }
    if (!parse_logprobs(body, call, err)) return false;
    if (log_prompts_enabled()) call.prompt_text = body.value(call.chat ? "messages" : "prompt", json()).dump();
    Result<std::optional<storage::TenantRecord>> tenant = state_.find_tenant(key.tenant);
    if (!tenant.ok() || !*tenant) {
      err = {http::status::internal_server_error, "the key's tenant is unknown", "server_error"};
      return false;
    }
    call.request.tenant = key.tenant;
    call.request.cache_salt = (*tenant)->cache_salt;
    call.tenant_limits = (*tenant)->limits;
    return true;
  }

  // Completions: `logprobs` is null or an integer 0-20 (top alternatives; the sampled
  // token's logprob is always given). Chat: `logprobs` a boolean, `top_logprobs` 0-20.
  static bool parse_logprobs(const json& body, CompletionCall& call, ApiError& err) {
    auto lp = body.find("logprobs");
    const bool given = lp != body.end() && !lp->is_null();
    if (!call.chat) {
      if (auto echo = body.find("echo"); echo != body.end() && echo->is_boolean() && echo->get<bool>()) {
        err = {http::status::bad_request, "'echo' is not supported", "invalid_request_error", "echo"};
        return false;
      }
      if (!given) return true;
      if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > kMaxTopLogprobs) {
        err = {http::status::bad_request, "'logprobs' must be an integer between 0 and 20", "invalid_request_error",
               "logprobs"};
        return false;
      }
      call.request.logprobs = static_cast<int32_t>(lp->get<int64_t>());
      return true;
    }
    if (given && !lp->is_boolean()) {
      err = {http::status::bad_request, "'logprobs' must be a boolean", "invalid_request_error", "logprobs"};
      return false;
    }
    const bool on = given && lp->get<bool>();
    int64_t top = 0;
    if (!get_number(body, "top_logprobs", top, 0, kMaxTopLogprobs, err)) return false;
    if (top > 0 && !on) {
      err = {http::status::bad_request, "'top_logprobs' needs 'logprobs': true", "invalid_request_error", "top_logprobs"};
      return false;
    }
    if (on) call.request.logprobs = static_cast<int32_t>(top);
    return true;
  }

  // Watches a connection while its request computes: when the client closes it, the
  // request's Pending learns so (hung_up) and the waiting coroutine cancels the request at
  // once. Data from the client (a pipelined request, a TLS alert) ends the watch: only a
  // closed or reset connection counts. The caller cancels the wait (socket.cancel())
  // before it reads from the connection again.
  template <class Stream>
  static void watch_hangup(Stream& stream, const std::shared_ptr<Pending>& pending) {
    tcp::socket& sock = beast::get_lowest_layer(stream).socket();
    sock.async_wait(tcp::socket::wait_read, [&sock, pending](boost::system::error_code ec) {
      if (ec == net::error::operation_aborted) return;  // the request is over; `sock` may be gone
      char c = 0;
      const ssize_t n = ec ? 0 : ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        pending->hung_up = true;
        pending->notified = true;
        pending->timer.cancel();
      }
    });
  }

  void record_done(const std::string& model, const std::string& tenant, int status, size_t prompt_tokens,
                   const HostEvent& last) {
    const scheduler::RequestMetrics& m = last.metrics;
    const double ttft = m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1e9 : -1;
    const double tpot = m.num_output_tokens > 1 ? (m.last_token_ns - m.first_token_ns) / 1e9 / (m.num_output_tokens - 1) : -1;
    const double e2e = m.last_token_ns >= 0 ? (m.last_token_ns - m.arrival_ns) / 1e9 : -1;
    metrics_.request_done(model, tenant, status, static_cast<int64_t>(prompt_tokens), last.n_tokens, ttft, tpot, e2e);
  }

  // nlohmann's JSON as the template engine's value (object member order kept).
  static engine::JsonValue to_template_value(const json& j) {
    switch (j.type()) {
      case json::value_t::null: return engine::JsonValue::null();
      case json::value_t::boolean: return engine::JsonValue::boolean(j.get<bool>());
      case json::value_t::number_integer:
      case json::value_t::number_unsigned: return engine::JsonValue::integer(j.get<int64_t>());
      case json::value_t::number_float: return engine::JsonValue::number(j.get<double>());
      case json::value_t::string: return engine::JsonValue::string(j.get<std::string>());
      case json::value_t::array: {
        engine::JsonValue::Array a;
        for (const json& x : j) a.push_back(to_template_value(x));
        return engine::JsonValue::make_array(std::move(a));
      }
      case json::value_t::object: {
        engine::JsonValue::Object o;
        for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), to_template_value(it.value()));
        return engine::JsonValue::make_object(std::move(o));
      }
      default: return engine::JsonValue::null();
    }
  }

  // /v1/chat/completions: checks `messages`, renders them through the model's chat
  // template (with the generation prompt) and tokenizes the result, special tokens parsed.
  bool parse_messages(const json& body, CompletionCall& call, ApiError& err) {
    auto messages = body.find("messages");
    if (messages == body.end() || !messages->is_array() || messages->empty()) {
      err = {http::status::bad_request, "'messages' must be a non-empty array", "invalid_request_error", "messages"};
      return false;
    }
    json normalized = json::array();
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        err = {http::status::bad_request, "'" + where + "' must be an object with a string 'role'", "invalid_request_error",
               where};
        return false;
      }
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool") {
        err = {http::status::bad_request, "'" + where + ".role' '" + role + "' is not one of system, developer, user, "
               "assistant, tool", "invalid_request_error", where + ".role"};
        return false;
      }
      json n = m;
      // Content as parts: the text parts joined (images are not supported).
      if (m.contains("content") && m["content"].is_array()) {
        std::string text;
        for (const json& part : m["content"]) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
            err = {http::status::bad_request, "'" + where + ".content' parts must be {\"type\": \"text\", \"text\": ...}",
                   "invalid_request_error", where + ".content"};
            return false;
          }
          text += part["text"].get<std::string>();
        }
        n["content"] = text;
      } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
        err = {http::status::bad_request, "'" + where + ".content' must be a string, an array of text parts or null",
               "invalid_request_error", where + ".content"};
        return false;
      }
      // Tool-call arguments arrive as JSON text; templates expect the object.
      if (n.contains("tool_calls") && n["tool_calls"].is_array()) {
        for (json& tc : n["tool_calls"]) {
          if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
              tc["function"].contains("arguments") && tc["function"]["arguments"].is_string()) {
            json parsed = json::parse(tc["function"]["arguments"].get<std::string>(), nullptr, false);
            if (!parsed.is_discarded()) tc["function"]["arguments"] = parsed;
          }
        }
      }
      normalized.push_back(std::move(n));
    }
    const engine::ChatTemplate* tmpl = call.host->chat_template();
    if (tmpl == nullptr) {
      err = {http::status::bad_request,
             "model '" + call.host->id() + "' has no chat template (" + call.host->chat_template_status().message() +
                 "); use /v1/completions",
             "invalid_request_error", "model"};
      return false;
    }
    engine::ChatTemplateInputs in;
    in.messages = to_template_value(normalized);
    if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) in.tools = to_template_value(*tools);
    in.add_generation_prompt = true;
    in.bos_token = call.host->bos_text();
    in.eos_token = call.host->eos_text();
    Result<std::string> text = tmpl->render(in);
    if (!text.ok()) {
      err = {http::status::bad_request, "the chat template refused these messages: " + text.status().message(),
             "invalid_request_error", "messages"};
      return false;
    }
    call.request.prompt =
        call.host->model().tokenizer().encode(*text, {.add_special = false, .parse_special = true});
    return true;
  }

  static json usage_json(const HostEvent& last, size_t prompt_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", last.n_tokens},
            {"total_tokens", static_cast<int64_t>(prompt_tokens) + last.n_tokens},
            {"prompt_tokens_details", {{"cached_tokens", last.metrics.num_cached_tokens}}}};
  }

  template <class Stream>
  net::awaitable<bool> completions(Stream& stream, const Request& req, const storage::ApiKeyRecord& key, bool chat) {
    // Counted until the response is written: a drain waits for it, not only for the engine.
    struct CallCount {
      Impl& impl;
      explicit CallCount(Impl& i) : impl(i) {
        std::lock_guard<std::mutex> lock(impl.calls_mu_);
        ++impl.calls_;
      }
      ~CallCount() {
        std::lock_guard<std::mutex> lock(impl.calls_mu_);
        if (--impl.calls_ == 0) impl.calls_cv_.notify_all();
      }
    } counted(*this);
    CompletionCall call;
    call.chat = chat;
    if (draining_.load()) {
      // SIGTERM: requests in flight finish; new ones go to another replica or retry.
      metrics_.request_refused(chat ? "/v1/chat/completions" : "/v1/completions", 503);
      Reply reply = error_reply({http::status::service_unavailable, "the server is shutting down; retry shortly",
                                 "server_error", "", "shutting_down"});
      reply.headers.emplace_back("Retry-After", "5");
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    if (ApiError e; !parse_completion(req, key, call, e)) {
      metrics_.request_refused(chat ? "/v1/chat/completions" : "/v1/completions", static_cast<int>(e.status));
      const Reply reply = error_reply(e);
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    const size_t prompt_tokens = call.request.prompt.size();
    const int64_t max_tokens = call.request.max_tokens;
    const int n = call.n;
    const Admission adm = limiter_.admit({{"key:" + key.key_id, key.limits}, {"tenant:" + key.tenant, call.tenant_limits}},
                                         static_cast<int64_t>(prompt_tokens) + n * max_tokens, mono_s());
    const std::vector<std::pair<std::string, std::string>> rate_headers = ratelimit_headers(adm);
    if (!adm.ok) {
      metrics_.request_refused(chat ? "/v1/chat/completions" : "/v1/completions", 429);
      Reply reply = error_reply({http::status::too_many_requests, "rate limit reached: " + adm.refused_by,
                                 "rate_limit_error", "", "rate_limit_exceeded"});
      reply.headers = rate_headers;
      reply.headers.emplace_back("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(adm.retry_after_s))));
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    // Every way out of here gives the reservation back.
    struct Release {
      RateLimiter& limiter;
      uint64_t ticket;
      int64_t unused;
      ~Release() { limiter.release(ticket, unused, mono_s()); }
    } release{limiter_, adm.ticket, n * max_tokens};
    auto pending = std::make_shared<Pending>(stream.get_executor());
    // One engine request per choice; they share the prompt's KV blocks through the prefix cache.
    std::vector<uint64_t> ids;
    Status submit_error;
    for (int i = 0; i < n && submit_error.is_ok(); ++i) {
      HostRequest r = call.request;
      if (call.seeded) r.sampling.seed += static_cast<uint64_t>(i);
      HostSink sink = [pending, i](const HostEvent& ev) {
        {
          std::lock_guard<std::mutex> lock(pending->mu);
          pending->events.emplace_back(i, ev);
        }
        net::post(pending->timer.get_executor(), [pending] {
          pending->notified = true;
          pending->timer.cancel();
        });
      };
      Result<uint64_t> id = call.host->submit(std::move(r), std::move(sink));
      if (id.ok()) {
        ids.push_back(*id);
      } else {
        submit_error = id.status();
      }
    }
    if (!submit_error.is_ok()) {
      for (uint64_t id : ids) call.host->cancel(id);
      Reply reply = error_reply(from_status(submit_error));
      reply.headers = rate_headers;
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    auto cancel_all = [&] {
      for (uint64_t id : ids) call.host->cancel(id);
    };
    watch_hangup(stream, pending);
    bool watching = true;
    auto stop_watching = [&] {
      if (!watching) return;
      watching = false;
      boost::system::error_code ignored;
      beast::get_lowest_layer(stream).socket().cancel(ignored);
    };

    const std::string cid = random_id(call.chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = now_s();
    const std::string model_id = call.host->id();
    // The next events, or none when the client hung up.
    auto next_events = [&]() -> net::awaitable<std::deque<std::pair<int, HostEvent>>> {
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(pending->mu);
          if (!pending->events.empty()) {
            std::deque<std::pair<int, HostEvent>> out;
            out.swap(pending->events);
            co_return out;
          }
        }
        if (pending->hung_up) co_return std::deque<std::pair<int, HostEvent>>();
        if (!pending->notified) {
          pending->timer.expires_at(net::steady_timer::time_point::max());
          boost::system::error_code ec;
          co_await pending->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
        pending->notified = false;
      }
    };
    struct Choice {
      std::string text;
      std::vector<HostLogprob> logprobs;
      int64_t text_offset = 0;  // completions' logprobs.text_offset so far
      HostEvent last;
      bool done = false;
    };
    std::vector<Choice> choices(static_cast<size_t>(n));
    int finished = 0;
    Status failure;
    // Usage of the whole call: the prompt once, every choice's completion tokens.
    auto finish_call = [&]() -> json {
      int64_t completion = 0;
      for (const Choice& c : choices) completion += c.last.n_tokens;
      release.unused = n * max_tokens - completion;
      state_.record_usage(key.key_id, wall_minute(), static_cast<int64_t>(prompt_tokens), completion);
      HostEvent total = choices[0].last;
      total.n_tokens = static_cast<int32_t>(completion);
      record_done(model_id, key.tenant, 200, prompt_tokens, total);
      if (log_enabled(LogLevel::kInfo)) {
        const scheduler::RequestMetrics& m = total.metrics;
        LogFields f{.request_id = cid, .tenant = key.tenant, .model = model_id, .key_id = key.key_id, .extra = {}};
        f.extra = {{"prompt_tokens", std::to_string(prompt_tokens)},
                   {"cached_tokens", std::to_string(m.num_cached_tokens)},
                   {"completion_tokens", std::to_string(completion)},
                   {"choices", std::to_string(n)},
                   {"ttft_ms", std::to_string(m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1000000 : -1)},
                   {"stream", call.stream ? "true" : "false"}};
        if (!call.user.empty()) f.extra.emplace_back("user", call.user);
        if (!call.prompt_text.empty()) f.extra.emplace_back("prompt", call.prompt_text);
        log(LogLevel::kInfo, call.chat ? "chat completion" : "completion", f);
      }
      return usage_json(total, prompt_tokens);
    };

    if (!call.stream) {
      while (finished < n && failure.is_ok()) {
        std::deque<std::pair<int, HostEvent>> batch = co_await next_events();
        if (pending->hung_up) {
          cancel_all();  // the client went away: free its blocks now
          co_return false;
        }
        for (auto& [i, ev] : batch) {
          Choice& c = choices[static_cast<size_t>(i)];
          c.text += ev.text;
          for (HostLogprob& lp : ev.logprobs) c.logprobs.push_back(std::move(lp));
          if (ev.finish == HostFinish::kError) failure = ev.error;
          if (ev.finish != HostFinish::kNone && !c.done) {
            c.done = true;
            ++finished;
            c.last = std::move(ev);
          }
        }
      }
      stop_watching();
      if (!failure.is_ok()) {
        cancel_all();
        const Reply reply = error_reply(from_status(failure));
        const bool ok = co_await send(stream, req, reply);
        co_return ok;
      }
      json out_choices = json::array();
      for (int i = 0; i < n; ++i) {
        Choice& c = choices[static_cast<size_t>(i)];
        const bool lp = call.request.logprobs >= 0;
        json logprobs = !lp ? json(nullptr) : call.chat ? chat_logprobs(c.logprobs) : completion_logprobs(c.logprobs, c.text_offset);
        out_choices.push_back(call.chat ? json{{"index", i},
                                               {"message", {{"role", "assistant"}, {"content", c.text}}},
                                               {"logprobs", logprobs},
                                               {"finish_reason", finish_name(c.last.finish)}}
                                        : json{{"index", i},
                                               {"text", c.text},
                                               {"logprobs", logprobs},
                                               {"finish_reason", finish_name(c.last.finish)}});
      }
      json body = {{"id", cid},
                   {"object", call.chat ? "chat.completion" : "text_completion"},
                   {"created", created},
                   {"model", model_id},
                   {"choices", out_choices},
                   {"usage", finish_call()}};
      const Reply reply{http::status::ok, body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json",
                        rate_headers};
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }

    // Streaming: server-sent events in HTTP chunks.
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    for (const auto& [name, value] : rate_headers) res.set(name, value);
    res.keep_alive(req.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    co_await http::async_write_header(stream, sr, net::redirect_error(net::use_awaitable, ec));
    auto emit = [&](const std::string& data) -> net::awaitable<bool> {
      const std::string frame = "data: " + data + "\n\n";
      boost::system::error_code wec;
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
      co_await net::async_write(stream, http::make_chunk(net::buffer(frame)), net::redirect_error(net::use_awaitable, wec));
      beast::get_lowest_layer(stream).expires_never();
      co_return !wec;
    };
    bool alive = !ec;
    std::vector<bool> first_chunk(static_cast<size_t>(n), true);
    while (alive && finished < n) {
      std::deque<std::pair<int, HostEvent>> batch = co_await next_events();
      if (pending->hung_up) {
        alive = false;
        break;
      }
      for (auto& [i, ev] : batch) {
        if (!alive) break;
        Choice& c = choices[static_cast<size_t>(i)];
        if (c.done) continue;
        if (ev.finish == HostFinish::kError) {
          const std::string data = error_body(from_status(ev.error));
          alive = co_await emit(data);
          c.done = true;
          finished = n;  // an error ends the whole call
          cancel_all();
          break;
        }
        if (!ev.text.empty() || !ev.logprobs.empty() || ev.finish != HostFinish::kNone) {
          const json finish = ev.finish == HostFinish::kNone ? json(nullptr) : json(finish_name(ev.finish));
          const bool lp = call.request.logprobs >= 0;
          json logprobs = !lp ? json(nullptr)
                          : call.chat ? chat_logprobs(ev.logprobs)
                                      : completion_logprobs(ev.logprobs, c.text_offset);
          json choice;
          if (call.chat) {
            json delta = json::object();
            if (first_chunk[static_cast<size_t>(i)]) delta["role"] = "assistant";
            if (!ev.text.empty() || first_chunk[static_cast<size_t>(i)]) delta["content"] = ev.text;
            choice = {{"index", i}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
          } else {
            choice = {{"index", i}, {"text", ev.text}, {"logprobs", logprobs}, {"finish_reason", finish}};
          }
          first_chunk[static_cast<size_t>(i)] = false;
          json chunk = {{"id", cid},
                        {"object", call.chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created},
                        {"model", model_id},
                        {"choices", json::array({choice})}};
          if (call.include_usage) chunk["usage"] = nullptr;
          const std::string data = chunk.dump(-1, ' ', false, json::error_handler_t::replace);
          alive = co_await emit(data);
        }
        if (ev.finish != HostFinish::kNone) {
          c.done = true;
          ++finished;
          c.last = std::move(ev);
          if (finished == n) {
            const json usage = finish_call();
            if (alive && call.include_usage) {
              json u = {{"id", cid},
                        {"object", call.chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created},
                        {"model", model_id},
                        {"choices", json::array()},
                        {"usage", usage}};
              const std::string data = u.dump();
              alive = co_await emit(data);
            }
          }
        }
      }
    }
    stop_watching();
    if (!alive) {
      cancel_all();  // the client went away: free its blocks now
      co_return false;
    }
    const std::string done_marker = "[DONE]";
    if (!co_await emit(done_marker)) co_return false;
    co_await net::async_write(stream, http::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
    co_return !ec;
  }

  ServerOptions options_;
  storage::StateStore& state_;
  RateLimiter limiter_;
  Metrics metrics_;
  ModelRegistry& models_;
  const Moderation& moderation_;
  std::atomic<bool> draining_{false};
  std::mutex calls_mu_;
  std::condition_variable calls_cv_;
  int64_t calls_ = 0;  // completion calls being answered; guarded by calls_mu_
  net::io_context ioc_;
  std::optional<net::ssl::context> ssl_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

Server::Server(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation)
    : impl_(std::make_unique<Impl>(std::move(options), state, models, moderation)) {}

Server::~Server() { stop(); }

Status Server::start() { return impl_->start(port_); }

void Server::stop() { impl_->stop(); }

void Server::begin_drain() { impl_->begin_drain(); }

bool Server::wait_idle(std::chrono::milliseconds timeout) { return impl_->wait_idle(timeout); }

}  // namespace sn::daemon
