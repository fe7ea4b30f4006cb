// The HTTP transport of supernoded (server.h): one C++20 coroutine per connection on a
// strand of a multi-threaded io_context. A request's headers are read first and matched
// against its listener's route table (router.h); the route's guard (an API key, or an admin
// session with its role and CSRF token) and body limit are checked before the body is read.
// Handlers (openai_api.cpp, admin_api.cpp, web_assets.cpp) answer through a StreamResponder,
// the one piece that writes whole and streamed (chunked) answers over TCP or TLS.
#include "supernode/daemon/server.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/base/mutex.h"
#include "supernode/daemon/log.h"
#include "supernode/daemon/metrics.h"
#include "supernode/webui/assets.h"

#include "admin_api.h"
#include "openai_api.h"
#include "openai_response.h"
#include "router.h"
#include "web_assets.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

namespace sn::daemon {
namespace {

using tcp = net::ip::tcp;
using Response = http::response<http::string_body>;

// Every answer: no sniffing, no framing, no referrer, and a CSP that allows only our own
// scripts, styles and images (the web UI has no inline script or style).
template <class Message>
void add_security_headers(Message& res) {
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy", boost::beast::string_view(webui::kContentSecurityPolicy.data(), webui::kContentSecurityPolicy.size()));
}

// Open connections, in all and per client address; one ConnSlot per accepted connection.
class ConnTable {
 public:
  // False when the connection is over a cap (the caller closes it).
  bool take(const std::string& addr, int max_total, int max_per_addr) {
    MutexLock lock(mu_);
    int& mine = by_addr_[addr];
    if (total_ >= max_total || mine >= max_per_addr) {
      if (mine == 0) by_addr_.erase(addr);
      return false;
    }
    ++mine;
    ++total_;
    return true;
  }
  void give(const std::string& addr) {
    MutexLock lock(mu_);
    auto it = by_addr_.find(addr);
    if (it != by_addr_.end() && --it->second <= 0) by_addr_.erase(it);
    --total_;
  }
  [[nodiscard]] int total() const {
    MutexLock lock(mu_);
    return total_;
  }

 private:
  mutable Mutex mu_;
  std::map<std::string, int> by_addr_ SN_GUARDED_BY(mu_);
  int total_ SN_GUARDED_BY(mu_) = 0;
};

struct ConnSlot {
  ConnTable* table = nullptr;
  std::string addr;
  ConnSlot(ConnTable* t, std::string a) : table(t), addr(std::move(a)) {}
  ConnSlot(ConnSlot&& o) noexcept : table(std::exchange(o.table, nullptr)), addr(std::move(o.addr)) {}
  ConnSlot& operator=(ConnSlot&&) = delete;
  ~ConnSlot() {
    if (table != nullptr) table->give(addr);
  }
};


// One listening socket and what it serves.
struct Listener {
  Router router;
  bool tls = false;     // TLS on this listener
  bool secure = false;  // TLS, or plain HTTP on loopback (cookies may drop Secure)
  const char* name = "api";
};

// The answer side of one request over `Stream` (beast::tcp_stream or its TLS stream).
template <class Stream>
class StreamResponder final : public Responder {
 public:
  StreamResponder(Stream& stream, const HttpRequest& req, int idle_timeout_s, const std::atomic<bool>& stopping)
      : stream_(stream), req_(req), idle_timeout_s_(idle_timeout_s), stopping_(stopping) {}

  net::awaitable<bool> send(const Reply& reply) override {
    Response res{reply.status, req_.version()};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, reply.content_type);
    add_security_headers(res);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(req_.keep_alive() && !reply.close);
    if (req_.method() != http::verb::head) {
      res.body() = reply.body;
      res.prepare_payload();
    } else {
      res.content_length(reply.body.size());
    }
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(idle_timeout_s_));
    if (req_.method() == http::verb::head) {
      http::response_serializer<http::string_body> sr{res};
      co_await http::async_write_header(stream_, sr, net::redirect_error(net::use_awaitable, ec));
    } else {
      co_await http::async_write(stream_, res, net::redirect_error(net::use_awaitable, ec));
    }
    beast::get_lowest_layer(stream_).expires_never();
    co_return !ec && !reply.close;
  }

  net::awaitable<bool> begin_stream(const Reply& head) override {
    http::response<http::empty_body> res{head.status, req_.version()};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, head.content_type);
    add_security_headers(res);
    for (const auto& [name, value] : head.headers) res.set(name, value);
    res.keep_alive(req_.keep_alive());
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(idle_timeout_s_));
    co_await http::async_write_header(stream_, sr, net::redirect_error(net::use_awaitable, ec));
    beast::get_lowest_layer(stream_).expires_never();
    co_return !ec;
  }

  net::awaitable<bool> write_chunk(const std::string& data) override {
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(idle_timeout_s_));
    co_await net::async_write(stream_, http::make_chunk(net::buffer(data)), net::redirect_error(net::use_awaitable, ec));
    beast::get_lowest_layer(stream_).expires_never();
    co_return !ec;
  }

  net::awaitable<bool> end_stream() override {
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(idle_timeout_s_));
    co_await net::async_write(stream_, http::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
    beast::get_lowest_layer(stream_).expires_never();
    co_return !ec;
  }

  // Data from the client (a pipelined request, a TLS alert) ends the watch: only a closed
  // or reset connection counts.
  void watch_hangup(std::function<void()> on_hangup) override {
    tcp::socket& sock = beast::get_lowest_layer(stream_).socket();
    watching_ = true;
    sock.async_wait(tcp::socket::wait_read, [&sock, on_hangup = std::move(on_hangup)](boost::system::error_code ec) {
      if (ec == net::error::operation_aborted) return;  // the request is over; `sock` may be gone
      char c = 0;
      const ssize_t n = ec ? 0 : ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) on_hangup();
    });
  }

  void stop_watching() override {
    if (!watching_) return;
    watching_ = false;
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream_).socket().cancel(ignored);
  }

  net::any_io_executor executor() override { return stream_.get_executor(); }
  bool stopping() const override { return stopping_.load(); }

 private:
  Stream& stream_;
  const HttpRequest& req_;
  int idle_timeout_s_;
  const std::atomic<bool>& stopping_;
  bool watching_ = false;
};

Reply text_reply(http::status status, std::string body) {
  return Reply{status, std::move(body), "text/plain; charset=utf-8", {}, false};
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation,
       AdminService* admin)
      : options_(std::move(options)),
        models_(models),
        openai_(OpenAiApiOptions{.prep_threads = options_.prep_threads, .idle_timeout_s = options_.idle_timeout_s}, state,
                models, moderation, metrics_sink_),
        ioc_(options_.io_threads),
        acceptor_(ioc_),
        metrics_acceptor_(ioc_),
        admin_acceptor_(ioc_) {
    if (admin != nullptr && options_.admin_enabled) {
      admin_api_ = std::make_unique<AdminApi>(
          AdminApiOptions{.session_idle_timeout_s = options_.admin_session_idle_s, .version = options_.version},
          *admin, openai_.metrics(), models);
    }
    build_routes();
  }

  ~Impl() {
    openai_.join();
    if (admin_api_) admin_api_->join();
  }

  void begin_drain() { openai_.begin_drain(); }
  bool wait_idle(std::chrono::milliseconds timeout) { return openai_.wait_idle(timeout); }

  Status start(uint16_t& port, uint16_t& metrics_port, uint16_t& admin_port) {
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
      if (options_.tls_cert.empty() || options_.tls_key.empty()) {
        return Status::invalid_argument("TLS", "both a certificate and its key are needed");
      }
      ssl_.emplace(net::ssl::context::tls_server);
      // TLS 1.2 and 1.3 only; forward-secret AEAD suites only (no CBC, no SHA-1, no RSA
      // key exchange); the server picks the suite; no renegotiation or compression.
      ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                        net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                        net::ssl::context::single_dh_use | net::ssl::context::no_compression);
      SSL_CTX* ctx = ssl_->native_handle();
      SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
      if (SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                       "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1 ||
          SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        return Status::internal("TLS", "the cipher or group policy was refused by OpenSSL");
      }
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
    } else {
      SN_RETURN_IF_ERROR(bind(acceptor_, options_.listen, port));
    }
    api_.tls = ssl_.has_value();
    api_.secure = api_.tls || loopback(acceptor_);
    if (!options_.metrics_listen.empty()) {
      SN_RETURN_IF_ERROR(bind(metrics_acceptor_, options_.metrics_listen, metrics_port).with_context("metrics"));
      metrics_.tls = ssl_.has_value() && !loopback(metrics_acceptor_);
      metrics_.secure = metrics_.tls || loopback(metrics_acceptor_);
      net::co_spawn(ioc_, accept_loop(metrics_acceptor_, metrics_), net::detached);
    }
    if (admin_api_ && !options_.admin_listen.empty()) {
      SN_RETURN_IF_ERROR(bind(admin_acceptor_, options_.admin_listen, admin_port).with_context("admin"));
      admin_.tls = ssl_.has_value();
      admin_.secure = admin_.tls || loopback(admin_acceptor_);
      net::co_spawn(ioc_, accept_loop(admin_acceptor_, admin_), net::detached);
    }
    net::co_spawn(ioc_, accept_loop(acceptor_, api_), net::detached);
    net::co_spawn(ioc_, trim_loop(), net::detached);
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
      metrics_acceptor_.close(ec);
      admin_acceptor_.close(ec);
    });
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    openai_.join();
    if (admin_api_) admin_api_->join();
  }

 private:
  // glibc keeps memory that connections and requests freed in its arenas; after a burst of
  // connections the process would stay at its peak. Every few seconds with nothing in
  // flight, the free memory goes back to the system (malloc_trim walks the free lists:
  // cheap next to a request).
  net::awaitable<void> trim_loop() {
    net::steady_timer t(co_await net::this_coro::executor);
    while (!stopped_.load()) {
      t.expires_after(std::chrono::seconds(5));
      boost::system::error_code ec;
      co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return;
      if (openai_.idle()) (void)::malloc_trim(0);
    }
  }

  static bool loopback(const tcp::acceptor& a) {
    boost::system::error_code ec;
    const tcp::endpoint ep = a.local_endpoint(ec);
    return !ec && ep.address().is_loopback();
  }

  static Status bind(tcp::acceptor& acceptor, const std::string& listen, uint16_t& port) {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return Status::invalid_argument("listen address '" + listen + "'", "expected HOST:PORT");
    }
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host == "localhost") host = "127.0.0.1";
    const std::string port_text = listen.substr(colon + 1);
    char* end = nullptr;
    const long p = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || p < 0 || p > 65535) {
      return Status::invalid_argument("listen address '" + listen + "'", "bad port '" + port_text + "'");
    }
    boost::system::error_code ec;
    const net::ip::address addr = net::ip::make_address(host, ec);
    if (ec) return Status::invalid_argument("listen address '" + listen + "'", "bad host '" + host + "'");
    const tcp::endpoint ep(addr, static_cast<uint16_t>(p));
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Status::io_error("listen on " + listen, ec.message());
    port = acceptor.local_endpoint().port();
    return Status::ok();
  }

  void build_routes() {
    // The API listener: health, the OpenAI API, and (unless it has a listener of its own)
    // the admin API and the web UI.
    add_health_routes(api_.router, ErrorStyle::kOpenAi);
    openai_.add_routes(api_.router);
    Router& admin_router = options_.admin_listen.empty() ? api_.router : admin_.router;
    if (admin_api_) {
      if (!options_.admin_listen.empty()) add_health_routes(admin_.router, ErrorStyle::kAdmin);
      admin_api_->add_routes(admin_router);
      add_web_routes(admin_router);
    }
    // The metrics listener: monitoring only.
    add_health_routes(metrics_.router, ErrorStyle::kText);
    metrics_.router.add({http::verb::get, "/metrics", Guard::kNone, ErrorStyle::kText, 0,
                         [this](Exchange& ex) -> net::awaitable<bool> {
                           const Reply reply{http::status::ok, render_metrics(), "text/plain; version=0.0.4; charset=utf-8", {},
                                             false};
                           const bool ok = co_await ex.out.send(reply);
                           co_return ok;
                         },
                         ""});
    metrics_.name = "metrics";
    admin_.name = "admin";
  }

  void add_health_routes(Router& r, ErrorStyle style) {
    r.add({http::verb::get, "/healthz", Guard::kNone, style, 0,
           [](Exchange& ex) -> net::awaitable<bool> {
             const Reply reply = text_reply(http::status::ok, "ok\n");
             const bool ok = co_await ex.out.send(reply);
             co_return ok;
           },
           ""});
    // Ready: serving at least one model and not draining.
    r.add({http::verb::get, "/readyz", Guard::kNone, style, 0,
           [this](Exchange& ex) -> net::awaitable<bool> {
             const bool draining = openai_.draining();
             const bool ready = !draining && !models_.list().empty();
             const Reply reply = ready ? text_reply(http::status::ok, "ok\n")
                                       : text_reply(http::status::service_unavailable,
                                                    draining ? "draining\n" : "no model loaded\n");
             const bool ok = co_await ex.out.send(reply);
             co_return ok;
           },
           ""});
  }

  // Accepts until the acceptor closes. Each wake-up takes every connection the listen queue
  // holds (non-blocking accepts, up to a burst), not one: under load the accept's completion
  // waits its turn behind every ready request on the I/O threads, and one connection per
  // turn left hundreds of finished handshakes queued for seconds. Over a connection cap a
  // connection is closed at once; accept errors (out of file descriptors, say) back off up
  // to 1 s instead of spinning, while the connections we have go on.
  net::awaitable<void> accept_loop(tcp::acceptor& acceptor, Listener& listener) {
    std::chrono::milliseconds backoff{0};
    net::steady_timer pause(co_await net::this_coro::executor);
    boost::system::error_code ec;
    acceptor.non_blocking(true, ec);
    for (;;) {
      tcp::socket socket(net::make_strand(ioc_));
      co_await acceptor.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      for (int burst = 0; !ec; ++burst) {
        admit_connection(std::move(socket), listener);
        if (burst == 256) break;
        socket = tcp::socket(net::make_strand(ioc_));
        acceptor.accept(socket, ec);  // would_block once the queue is empty
      }
      if (ec == net::error::would_block || ec == net::error::try_again || !ec) {
        backoff = std::chrono::milliseconds(0);
        accept_error_logged_.store(false);
        continue;
      }
      if (!acceptor.is_open()) co_return;
      backoff = std::min(std::chrono::milliseconds(1000), std::max(std::chrono::milliseconds(10), backoff * 2));
      if (!accept_error_logged_.exchange(true)) {
        log(LogLevel::kWarning, "accepting connections failed (" + ec.message() + "); backing off");
      }
      pause.expires_after(backoff);
      co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
  }

  // A connection just accepted: counted against the caps (closed when over one), then
  // served by its own coroutine.
  void admit_connection(tcp::socket socket, Listener& listener) {
    boost::system::error_code rec;
    const tcp::endpoint remote = socket.remote_endpoint(rec);
    std::string addr = rec ? std::string("?") : remote.address().to_string();
    if (!conns_.take(addr, options_.max_connections, options_.max_connections_per_address)) {
      metrics_sink_.request_refused("connection", 503);
      socket.close(rec);
      return;
    }
    socket.non_blocking(false, rec);  // accepted from a non-blocking listener; Asio manages it
    ConnSlot slot(&conns_, std::move(addr));
    const net::any_io_executor ex = socket.get_executor();
    if (listener.tls) {
      net::co_spawn(ex, session_tls(std::move(socket), std::move(slot), listener), net::detached);
    } else {
      net::co_spawn(ex, session_plain(std::move(socket), std::move(slot), listener), net::detached);
    }
  }

  net::awaitable<void> session_plain(tcp::socket socket, ConnSlot slot, Listener& listener) {
    (void)slot;  // held for the connection's life
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream, listener, slot.addr);
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    // Lingering close: read and drop what the client still sends (the rest of a body we
    // refused, say) for a short while, so that closing does not reset the connection
    // before the client has read our answer.
    std::array<char, 4096> sink;
    size_t drained = 0;
    stream.expires_after(std::chrono::seconds(2));
    while (!ec && drained < (16u << 20)) {
      drained += co_await stream.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
    }
  }

  net::awaitable<void> session_tls(tcp::socket socket, ConnSlot slot, Listener& listener) {
    (void)slot;
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ssl_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
    boost::system::error_code ec;
    co_await stream.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;  // not TLS, an old protocol version, or gone: nothing to answer
    co_await serve(stream, listener, slot.addr);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  }

  // An answer written before the body was read (refusals): in the route family's format.
  static Reply refusal_reply(ErrorStyle style, http::status status, const std::string& message, const std::string& code) {
    switch (style) {
      case ErrorStyle::kAdmin: return admin_error(status, message, code);
      case ErrorStyle::kText: return text_reply(status, message + "\n");
      case ErrorStyle::kOpenAi:
      default: {
        const bool auth = status == http::status::unauthorized;
        return openai_error({status, message, static_cast<int>(status) >= 500 ? "server_error" : "invalid_request_error", "",
                             auth ? "invalid_api_key" : code});
      }
    }
  }

  // The request loop of one connection (keep-alive), over either stream. Each request's
  // headers are read and checked first; its body only once the route and guard allow it.
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, Listener& listener, const std::string& client_addr) {
    beast::flat_buffer buffer;  // bounded by the parser's header and body limits
    for (;;) {
      // An idle keep-alive connection keeps little: what a large request grew goes back.
      if (buffer.size() == 0 && buffer.capacity() > 16384) buffer.shrink_to_fit();
      http::request_parser<http::string_body> parser;
      parser.body_limit(options_.max_body_bytes);
      parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
      boost::system::error_code ec;
      co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
          ec == net::error::connection_reset || ec == net::error::operation_aborted || ec == net::ssl::error::stream_truncated) {
        break;
      }
      if (ec) {
        co_await refuse_unreadable(stream, ec);
        break;
      }
      const http::request_header<>& head = parser.get();
      const std::string_view target(head.target().data(), head.target().size());
      const size_t qmark = target.find('?');
      const std::string path(target.substr(0, qmark));
      const Router::Match match = listener.router.match(head.method(), path);
      std::optional<Reply> refusal;
      std::string label = "other";
      std::optional<storage::Principal> tenant;
      std::optional<AdminSession> session;
      std::map<std::string, std::string> query;
      if (match.route == nullptr) {
        const ErrorStyle style = path.rfind("/api/admin/", 0) == 0 ? ErrorStyle::kAdmin
                                 : path.rfind("/v1/", 0) == 0     ? ErrorStyle::kOpenAi
                                 : listener.router.empty()        ? ErrorStyle::kText
                                                                  : (listener.name == std::string("metrics") ? ErrorStyle::kText
                                                                                                            : ErrorStyle::kOpenAi);
        if (match.path_known) {
          refusal = refusal_reply(style, http::status::method_not_allowed, "method not allowed on " + path, "method_not_allowed");
          std::string allow;
          for (const std::string& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
          refusal->headers.emplace_back("Allow", allow);
        } else if (match.bad_escape) {
          refusal = refusal_reply(style, http::status::bad_request, "malformed percent-encoding in " + path, "invalid_request");
        } else {
          refusal = refusal_reply(style, http::status::not_found, "no route " + path, "not_found");
        }
      } else {
        const Route& route = *match.route;
        label = route.label;
        if (qmark != std::string_view::npos && !parse_query(target.substr(qmark + 1), query)) {
          refusal = refusal_reply(route.errors, http::status::bad_request, "malformed query string", "invalid_request");
        } else if (route.guard == Guard::kTenantKey) {
          ApiError err;
          if (!openai_.authorize(head, tenant, err)) refusal = openai_error(err);
        } else if (route.guard != Guard::kNone) {  // an admin session
          Reply why;
          if (!admin_api_ || !admin_api_->authorize(head, route.guard, client_addr, session, why)) {
            refusal = admin_api_ ? why : admin_error(http::status::not_found, "the admin API is disabled", "not_found");
          }
        }
        const size_t limit = route.max_body != 0 ? std::min(route.max_body, options_.max_body_bytes) : options_.max_body_bytes;
        parser.body_limit(limit);
        if (!refusal && parser.content_length() && *parser.content_length() > limit) {
          refusal = refusal_reply(route.errors, http::status::payload_too_large,
                                  "the body is larger than " + std::to_string(limit) + " bytes", "too_large");
        }
      }
      if (refusal) {
        // The body stays unread: answer, then close (the lingering close drains it).
        refusal->close = true;
        metrics_sink_.request_refused(label, static_cast<int>(refusal->status));
        const HttpRequest bare(head);
        StreamResponder<Stream> out(stream, bare, options_.idle_timeout_s, stopped_);
        (void)co_await out.send(*refusal);
        break;
      }
      if (head[http::field::expect] == "100-continue") {
        http::response<http::empty_body> cont{http::status::continue_, head.version()};
        co_await http::async_write(stream, cont, net::redirect_error(net::use_awaitable, ec));
        if (ec) break;
      }
      co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (ec == http::error::body_limit || ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension ||
            ec == http::error::partial_message) {
          co_await refuse_unreadable(stream, ec);
        }
        break;
      }
      HttpRequest req = parser.release();
      beast::get_lowest_layer(stream).expires_never();  // a request may generate for a long time
      StreamResponder<Stream> out(stream, req, options_.idle_timeout_s, stopped_);
      Exchange ex{req, out, path, match.params, std::move(query), client_addr, listener.secure, listener.tls,
                  std::move(tenant), std::move(session)};
      const bool keep = co_await dispatch(*match.route, ex);
      if (!keep || !req.keep_alive()) break;
    }
  }

  // Runs a handler; nothing escapes: a failure anywhere below becomes a 500 that the client
  // gets (when nothing was written yet) and the log records.
  net::awaitable<bool> dispatch(const Route& route, Exchange& ex) {
    bool failed = false;
    try {
      const bool keep = co_await route.handler(ex);
      co_return keep;
    } catch (const std::exception& e) {
      failed = true;
      log(LogLevel::kError, std::string("request failed: ") + e.what());
    } catch (...) {
      failed = true;
      log(LogLevel::kError, "request failed");
    }
    (void)failed;
    Reply reply = refusal_reply(route.errors, http::status::internal_server_error, "internal error", "internal");
    reply.close = true;
    metrics_sink_.request_refused(route.label, 500);
    (void)co_await ex.out.send(reply);
    co_return false;
  }

  // Malformed request line or headers, or over a limit: answer and close.
  template <class Stream>
  net::awaitable<void> refuse_unreadable(Stream& stream, boost::system::error_code why) {
    ApiError e;
    e.status = why == http::error::body_limit    ? http::status::payload_too_large
               : why == http::error::header_limit ? http::status::request_header_fields_too_large
                                                  : http::status::bad_request;
    e.message = "could not read the HTTP request: " + why.message();
    Response res{e.status, 11};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, "application/json");
    add_security_headers(res);
    res.keep_alive(false);
    res.body() = error_body(e);
    res.prepare_payload();
    metrics_sink_.request_refused("other", static_cast<int>(e.status));
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
  }

  std::string render_metrics() const {
    const std::vector<std::shared_ptr<ModelHost>> hosts = models_.list();
    std::vector<ModelHost*> raw;
    for (const std::shared_ptr<ModelHost>& h : hosts) raw.push_back(h.get());
    std::string out = metrics_sink_.render(raw);
    out += "# HELP supernode_http_connections Open client connections.\n# TYPE supernode_http_connections gauge\n";
    out += "supernode_http_connections " + std::to_string(conns_.total()) + "\n";
    return out;
  }

  ServerOptions options_;
  ModelRegistry& models_;
  Metrics metrics_sink_;
  OpenAiApi openai_;
  std::unique_ptr<AdminApi> admin_api_;
  ConnTable conns_;
  std::atomic<bool> accept_error_logged_{false};
  net::io_context ioc_;
  std::optional<net::ssl::context> ssl_;
  Listener api_;
  Listener metrics_;
  Listener admin_;
  tcp::acceptor acceptor_;
  tcp::acceptor metrics_acceptor_;
  tcp::acceptor admin_acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

Server::Server(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation,
               AdminService* admin)
    : impl_(std::make_unique<Impl>(std::move(options), state, models, moderation, admin)) {}

Server::~Server() { stop(); }

Status Server::start() { return impl_->start(port_, metrics_port_, admin_port_); }

void Server::stop() { impl_->stop(); }

void Server::begin_drain() { impl_->begin_drain(); }

bool Server::wait_idle(std::chrono::milliseconds timeout) { return impl_->wait_idle(timeout); }

}  // namespace sn::daemon
