// The HTTP server (server.h): one C++20 coroutine per connection on a strand of a
// multi-threaded io_context. A request's headers are read first: the route and the key are
// checked before its body is read. A completion request is admitted by the rate limiter,
// prepared (template, tokens, input moderation) on the prep pool, and handed to its
// ModelHost; the engine thread's events come back through a Pending bridge (a queue plus a
// timer the coroutine sleeps on, both on the connection's strand), and go out as one JSON
// body or as SSE chunks. The request's CallMeter (held by the coroutine and by each
// engine-side sink) writes its usage and settles its quota when the last holder lets go, so
// every generated token is metered however the request ends.
#include "supernode/daemon/server.h"

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 under
// the sanitizers' -O2 cannot see through the coroutine frame allocation and reports a
// mismatch inside Asio's code (-Wmismatched-new-delete), a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "supernode/base/mutex.h"
#include "supernode/daemon/log.h"
#include "supernode/daemon/metrics.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/rate_limiter.h"

#include "openai_request.h"
#include "openai_response.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
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
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <utility>

namespace sn::daemon {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

std::string random_id(const char* prefix) {
  static Mutex mu;
  static std::mt19937_64 rng SN_GUARDED_BY(mu){std::random_device{}()};
  MutexLock lock(mu);
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

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
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

// Events of one request, handed from the engine thread to the connection's strand.
struct Pending {
  explicit Pending(net::any_io_executor ex) : timer(ex) {}
  Mutex mu;
  std::deque<std::pair<int, HostEvent>> events SN_GUARDED_BY(mu);  // (choice index, event)
  net::steady_timer timer;       // strand only
  bool notified = false;         // strand only
  bool hung_up = false;          // strand only: the client closed its connection
};

// The metering of one call: usage row and quota settlement, written when the last holder
// (the coroutine, or an engine-side sink after its request's last event) lets go. Sinks
// record each choice's token count; only the engine thread writes a choice's count, and the
// shared_ptr's release orders those writes before the destructor.
class CallMeter {
 public:
  CallMeter(storage::StateStore& state, RateLimiter& limiter, uint64_t ticket, std::string key_id, int n)
      : state_(state), limiter_(limiter), ticket_(ticket), key_id_(std::move(key_id)), tokens_(static_cast<size_t>(n)) {}
  CallMeter(const CallMeter&) = delete;
  CallMeter& operator=(const CallMeter&) = delete;
  ~CallMeter() {
    const int64_t completion = completion_tokens();
    const int64_t prompt = started_ ? prompt_tokens_ : 0;
    if (started_) state_.record_usage(key_id_, wall_minute(), prompt, completion);
    limiter_.settle(ticket_, prompt + completion, mono_s());
  }
  // The engine accepted the call's first request: its prompt counts from now on.
  void started(int64_t prompt_tokens) {
    started_ = true;
    prompt_tokens_ = prompt_tokens;
  }
  void saw(int choice, int32_t n_tokens) {
    std::atomic<int32_t>& t = tokens_[static_cast<size_t>(choice)];
    if (n_tokens > t.load(std::memory_order_relaxed)) t.store(n_tokens, std::memory_order_relaxed);
  }
  [[nodiscard]] int64_t completion_tokens() const {
    int64_t sum = 0;
    for (const std::atomic<int32_t>& t : tokens_) sum += t.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  storage::StateStore& state_;
  RateLimiter& limiter_;
  uint64_t ticket_;
  std::string key_id_;
  bool started_ = false;  // set before any sink exists
  int64_t prompt_tokens_ = 0;
  std::vector<std::atomic<int32_t>> tokens_;
};

// A request's preparation on the prep pool: its result, and the timer the coroutine sleeps
// on until it is there. Shared, so the pool's work outlives a connection torn down early.
struct Prep {
  explicit Prep(net::any_io_executor ex) : timer(ex) {}
  OpenAiRequest request;
  std::shared_ptr<ModelHost> host;
  std::shared_ptr<const ModerationTerms> terms;
  std::vector<int32_t> tokens;  // results
  ApiError err;
  bool ok = false;
  bool moderated = false;       // refused by input moderation
  net::steady_timer timer;      // strand only
  bool done = false;            // strand only
};

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

enum class Route { kHealth, kReady, kMetrics, kModels, kCompletions, kChat, kNone };

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation)
      : options_(std::move(options)),
        state_(state),
        models_(models),
        moderation_(moderation),
        ioc_(options_.io_threads),
        acceptor_(ioc_),
        metrics_acceptor_(ioc_),
        prep_pool_(static_cast<size_t>(std::max(1, options_.prep_threads))) {}

  ~Impl() { prep_pool_.join(); }

  void begin_drain() { draining_.store(true); }

  bool wait_idle(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    MutexLock lock(calls_mu_);
    while (calls_ != 0) {
      if (!calls_cv_.wait_until(calls_mu_, deadline)) return calls_ == 0;
    }
    return true;
  }

  Status start(uint16_t& port, uint16_t& metrics_port) {
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
    if (!options_.metrics_listen.empty()) {
      SN_RETURN_IF_ERROR(bind(metrics_acceptor_, options_.metrics_listen, metrics_port).with_context("metrics"));
      metrics_tls_ = ssl_.has_value() && !loopback(metrics_acceptor_);
      net::co_spawn(ioc_, accept_loop(metrics_acceptor_, /*metrics=*/true), net::detached);
    }
    net::co_spawn(ioc_, accept_loop(acceptor_, /*metrics=*/false), net::detached);
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
    });
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    prep_pool_.join();
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
      bool idle = false;
      {
        MutexLock lock(calls_mu_);
        idle = calls_ == 0;
      }
      if (idle) (void)::malloc_trim(0);
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

  // Accepts until the acceptor closes. Each wake-up takes every connection the listen queue
  // holds (non-blocking accepts, up to a burst), not one: under load the accept's completion
  // waits its turn behind every ready request on the I/O threads, and one connection per
  // turn left hundreds of finished handshakes queued for seconds. Over a connection cap a
  // connection is closed at once; accept errors (out of file descriptors, say) back off up
  // to 1 s instead of spinning, while the connections we have go on.
  net::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool metrics) {
    std::chrono::milliseconds backoff{0};
    net::steady_timer pause(co_await net::this_coro::executor);
    boost::system::error_code ec;
    acceptor.non_blocking(true, ec);
    for (;;) {
      tcp::socket socket(net::make_strand(ioc_));
      co_await acceptor.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
      for (int burst = 0; !ec; ++burst) {
        admit_connection(std::move(socket), metrics);
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
  void admit_connection(tcp::socket socket, bool metrics) {
    boost::system::error_code rec;
    const tcp::endpoint remote = socket.remote_endpoint(rec);
    std::string addr = rec ? std::string("?") : remote.address().to_string();
    if (!conns_.take(addr, options_.max_connections, options_.max_connections_per_address)) {
      metrics_.request_refused("connection", 503);
      socket.close(rec);
      return;
    }
    socket.non_blocking(false, rec);  // accepted from a non-blocking listener; Asio manages it
    ConnSlot slot(&conns_, std::move(addr));
    const net::any_io_executor ex = socket.get_executor();
    if (ssl_ && (!metrics || metrics_tls_)) {
      net::co_spawn(ex, session_tls(std::move(socket), std::move(slot), metrics), net::detached);
    } else {
      net::co_spawn(ex, session_plain(std::move(socket), std::move(slot), metrics), net::detached);
    }
  }

  net::awaitable<void> session_plain(tcp::socket socket, ConnSlot slot, bool metrics) {
    (void)slot;  // held for the connection's life
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream, metrics);
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

  net::awaitable<void> session_tls(tcp::socket socket, ConnSlot slot, bool metrics) {
    (void)slot;
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *ssl_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
    boost::system::error_code ec;
    co_await stream.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;  // not TLS, an old protocol version, or gone: nothing to answer
    co_await serve(stream, metrics);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  }

  static Route route_of(const std::string& path, bool metrics) {
    if (path == "/healthz") return Route::kHealth;
    if (path == "/readyz") return Route::kReady;
    if (metrics) return path == "/metrics" ? Route::kMetrics : Route::kNone;
    if (path == "/v1/models") return Route::kModels;
    if (path == "/v1/completions") return Route::kCompletions;
    if (path == "/v1/chat/completions") return Route::kChat;
    return Route::kNone;
  }

  // A whole response to write. Coroutines here take no temporaries as arguments (GCC 12
  // destroys some temporaries of a co_await full-expression too early): callers fill a
  // named Reply and co_await send(stream, req, reply).
  struct Reply {
    http::status status = http::status::ok;
    std::string body;
    const char* content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    bool close = false;  // the request's body was not read: the connection cannot go on
  };

  static Reply error_reply(const ApiError& e) { return Reply{e.status, error_body(e), "application/json", {}, false}; }

  // The request loop of one connection (keep-alive), over either stream. Each request's
  // headers are read and checked first; its body only once the route and key allow it.
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, bool metrics) {
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
      const std::string path(target.substr(0, target.find('?')));
      const Route route = route_of(path, metrics);
      std::optional<storage::Principal> who;
      ApiError refusal;
      bool refused = false;
      if (route == Route::kNone) {
        refusal = {http::status::not_found, "no route " + path, "invalid_request_error", "", ""};
        refused = true;
      } else if (route == Route::kModels || route == Route::kCompletions || route == Route::kChat) {
        refused = !authorize(head, who, refusal);
      }
      if (!refused && parser.content_length() && *parser.content_length() > options_.max_body_bytes) {
        refusal = {http::status::payload_too_large,
                   "the body is larger than " + std::to_string(options_.max_body_bytes) + " bytes",
                   "invalid_request_error", "", ""};
        refused = true;
      }
      if (refused) {
        // The body stays unread: answer, then close (the lingering close drains it).
        Reply reply = error_reply(refusal);
        reply.close = true;
        metrics_.request_refused(route == Route::kNone ? "other" : path, static_cast<int>(refusal.status));
        const Request bare(head);
        (void)co_await send(stream, bare, reply);
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
      Request req = parser.release();
      beast::get_lowest_layer(stream).expires_never();  // a request may generate for a long time
      const bool keep = co_await handle(stream, req, route, who);
      if (!keep || !req.keep_alive()) break;
    }
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
    res.keep_alive(false);
    res.body() = error_body(e);
    res.prepare_payload();
    metrics_.request_refused("other", static_cast<int>(e.status));
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
  }

  // Writes a whole response; false when the connection broke (or must close).
  template <class Stream>
  net::awaitable<bool> send(Stream& stream, const Request& req, const Reply& reply) {
    Response res{reply.status, req.version()};
    res.set(http::field::server, "supernoded");
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(req.keep_alive() && !reply.close);
    res.body() = reply.body;
    res.prepare_payload();
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options_.idle_timeout_s));
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    beast::get_lowest_layer(stream).expires_never();
    co_return !ec && !reply.close;
  }

  // Returns whether the connection may be kept. Nothing escapes: a failure anywhere below
  // becomes a 500 that the client gets and the log records.
  template <class Stream>
  net::awaitable<bool> handle(Stream& stream, const Request& req, Route route, const std::optional<storage::Principal>& who) {
    Reply reply;
    bool failed = false;
    try {
      switch (route) {
        case Route::kHealth:
        case Route::kReady: {
          // Ready: serving at least one model and not draining.
          const bool ready = route == Route::kHealth || (!draining_.load() && !models_.list().empty());
          reply = req.method() != http::verb::get ? error_reply(method_not_allowed())
                  : ready ? Reply{http::status::ok, "ok\n", "text/plain", {}, false}
                          : Reply{http::status::service_unavailable, draining_.load() ? "draining\n" : "no model loaded\n",
                                  "text/plain", {}, false};
          break;
        }
        case Route::kMetrics:
          reply = req.method() == http::verb::get
                      ? Reply{http::status::ok, render_metrics(), "text/plain; version=0.0.4; charset=utf-8", {}, false}
                      : error_reply(method_not_allowed());
          break;
        case Route::kModels:
          reply = req.method() == http::verb::get ? Reply{http::status::ok, models_body(*who), "application/json", {}, false}
                                                  : error_reply(method_not_allowed());
          break;
        case Route::kCompletions:
        case Route::kChat:
          if (req.method() != http::verb::post) {
            reply = error_reply(method_not_allowed());
            break;
          }
          {
            const storage::Principal& p = *who;
            const bool chat = route == Route::kChat;
            const bool keep = co_await completions(stream, req, p, chat);
            co_return keep;
          }
        case Route::kNone: reply = error_reply({http::status::not_found, "no route", "invalid_request_error", "", ""}); break;
      }
    } catch (const std::exception& e) {
      failed = true;
      log(LogLevel::kError, std::string("request failed: ") + e.what());
    } catch (...) {
      failed = true;
      log(LogLevel::kError, "request failed");
    }
    if (failed) {
      reply = error_reply({http::status::internal_server_error, "internal error", "server_error", "", ""});
      reply.close = true;
    }
    if (static_cast<int>(reply.status) >= 400) metrics_.request_refused(route_label(route), static_cast<int>(reply.status));
    const bool ok = co_await send(stream, req, reply);
    co_return ok;
  }

  static std::string route_label(Route r) {
    switch (r) {
      case Route::kHealth: return "/healthz";
      case Route::kReady: return "/readyz";
      case Route::kMetrics: return "/metrics";
      case Route::kModels: return "/v1/models";
      case Route::kCompletions: return "/v1/completions";
      case Route::kChat: return "/v1/chat/completions";
      default: return "other";
    }
  }

  std::string render_metrics() const {
    const std::vector<std::shared_ptr<ModelHost>> hosts = models_.list();
    std::vector<ModelHost*> raw;
    for (const std::shared_ptr<ModelHost>& h : hosts) raw.push_back(h.get());
    std::string out = metrics_.render(raw);
    out += "# HELP supernode_http_connections Open client connections.\n# TYPE supernode_http_connections gauge\n";
    out += "supernode_http_connections " + std::to_string(conns_.total()) + "\n";
    return out;
  }

  static ApiError method_not_allowed() {
    return {http::status::method_not_allowed, "method not allowed on this route", "invalid_request_error", "", ""};
  }

  // The key of the request's headers, with its tenant; false with `err` (401, or 500 when
  // the state store fails: its message stays in the log, never goes to the client).
  bool authorize(const http::request_header<>& head, std::optional<storage::Principal>& who, ApiError& err) {
    err = {http::status::unauthorized, "", "invalid_request_error", "", "invalid_api_key"};
    auto it = head.find(http::field::authorization);
    if (it == head.end()) {
      err.message = "missing API key: send 'Authorization: Bearer <key>'";
      return false;
    }
    const std::string_view v(it->value().data(), it->value().size());
    if (v.substr(0, 7) != "Bearer ") {
      err.message = "the Authorization header must be 'Bearer <key>'";
      return false;
    }
    Result<std::optional<storage::Principal>> r = state_.authorize(v.substr(7));
    if (!r.ok()) {
      log(LogLevel::kError, "checking an API key failed: " + r.status().to_string());
      err = {http::status::internal_server_error, "internal error: the key could not be checked", "server_error", "", ""};
      return false;
    }
    if (!*r) {
      err.message = "invalid API key";  // never echo the key
      return false;
    }
    who = std::move(**r);
    return true;
  }

  // A model is allowed when both the key's and its tenant's lists allow it (empty: all).
  static bool allowed(const storage::Principal& p, const std::string& model) {
    auto in = [&](const std::vector<std::string>& list) {
      return list.empty() || std::find(list.begin(), list.end(), model) != list.end();
    };
    return in(p.key.limits.models) && in(p.tenant.limits.models);
  }

  std::string models_body(const storage::Principal& p) const {
    json data = json::array();
    for (const std::shared_ptr<ModelHost>& h : models_.list()) {
      if (!allowed(p, h->id())) continue;
      data.push_back({{"id", h->id()}, {"object", "model"}, {"created", h->created_s()}, {"owned_by", "supernode"}});
    }
    return dump_json(json{{"object", "list"}, {"data", data}});
  }

  // Renders and tokenizes on the prep pool and runs input moderation; resumes on the
  // connection's strand when done.
  net::awaitable<void> prepare(const std::shared_ptr<Prep>& prep) {
    net::post(prep_pool_, [prep] {
      try {
        const ModelHost& h = *prep->host;
        PromptModel pm{.tokenizer = &h.model().tokenizer(),
                       .chat_template = h.chat_template(),
                       .model_id = h.id(),
                       .bos_text = h.bos_text(),
                       .eos_text = h.eos_text()};
        prep->ok = prepare_prompt(prep->request, pm, prep->tokens, prep->err);
        if (prep->ok && !prep->terms->input.empty() &&
            prep->terms->input_hit(h.model().tokenizer().decode(prep->tokens, /*special=*/true))) {
          prep->ok = false;
          prep->moderated = true;
          prep->err = {http::status::bad_request, "the prompt was refused by content moderation", "invalid_request_error",
                       prep->request.chat ? "messages" : "prompt", "content_filter"};
        }
      } catch (const std::exception& e) {
        prep->ok = false;
        prep->err = {http::status::internal_server_error, "internal error", "server_error", "", ""};
        log(LogLevel::kError, std::string("preparing a request failed: ") + e.what());
      }
      net::post(prep->timer.get_executor(), [prep] {
        prep->done = true;
        prep->timer.cancel();
      });
    });
    while (!prep->done) {
      prep->timer.expires_at(net::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await prep->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
  }

  void record_done(const std::string& model, const std::string& tenant, int status, size_t prompt_tokens,
                   int64_t completion_tokens, const scheduler::RequestMetrics& m) {
    const double ttft = m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1e9 : -1;
    const double tpot = m.num_output_tokens > 1 ? (m.last_token_ns - m.first_token_ns) / 1e9 / (m.num_output_tokens - 1) : -1;
    const double e2e = m.last_token_ns >= 0 ? (m.last_token_ns - m.arrival_ns) / 1e9 : -1;
    metrics_.request_done(model, tenant, status, static_cast<int64_t>(prompt_tokens), completion_tokens, ttft, tpot, e2e);
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

  template <class Stream>
  net::awaitable<bool> completions(Stream& stream, const Request& req, const storage::Principal& who, bool chat) {
    // Counted until the response is written: a drain waits for it, not only for the engine.
    struct CallCount {
      Impl& impl;
      explicit CallCount(Impl& i) : impl(i) {
        MutexLock lock(impl.calls_mu_);
        ++impl.calls_;
      }
      ~CallCount() {
        MutexLock lock(impl.calls_mu_);
        if (--impl.calls_ == 0) impl.calls_cv_.notify_all();
      }
    } counted(*this);
    const storage::ApiKeyRecord& key = who.key;
    const std::string route = chat ? "/v1/chat/completions" : "/v1/completions";
    if (draining_.load()) {
      // SIGTERM: requests in flight finish; new ones go to another replica or retry.
      metrics_.request_refused(route, 503);
      Reply reply = error_reply({http::status::service_unavailable, "the server is shutting down; retry shortly",
                                 "server_error", "", "shutting_down"});
      reply.headers.emplace_back("Retry-After", "5");
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    // 1. The body (cheap, bounded), the model and whether this key may use it.
    auto prep = std::make_shared<Prep>(stream.get_executor());
    ApiError err;
    bool ok_so_far = parse_openai_request(req.body(), chat, prep->request, err);
    if (ok_so_far) {
      prep->host = models_.find(prep->request.model);
      if (prep->host == nullptr || !allowed(who, prep->request.model)) {
        err = {http::status::not_found, "the model '" + prep->request.model + "' does not exist", "invalid_request_error",
               "model", "model_not_found"};
        ok_so_far = false;
      } else if (prep->request.max_tokens > prep->host->context()) {
        err = {http::status::bad_request,
               "'max_tokens' must be at most " + std::to_string(prep->host->context()) + " (the model's context)",
               "invalid_request_error", "max_tokens", ""};
        ok_so_far = false;
      }
    }
    if (!ok_so_far) {
      metrics_.request_refused(route, static_cast<int>(err.status));
      const Reply reply = error_reply(err);
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    const OpenAiRequest& r = prep->request;
    const int n = r.n;
    const int64_t max_tokens = r.max_tokens;
    // 2. The quota, before any expensive work: a request, n in-flight slots, n x max_tokens
    // reserved (the prompt is charged when settled).
    const Admission adm = limiter_.admit({{"key:" + key.key_id, key.limits}, {"tenant:" + key.tenant, who.tenant.limits}},
                                         n * max_tokens, n, mono_s());
    const std::vector<std::pair<std::string, std::string>> rate_headers = ratelimit_headers(adm);
    if (!adm.ok) {
      metrics_.request_refused(route, 429);
      Reply reply = error_reply({http::status::too_many_requests, "rate limit reached: " + adm.refused_by,
                                 "rate_limit_error", "", "rate_limit_exceeded"});
      reply.headers = rate_headers;
      reply.headers.emplace_back("Retry-After", std::to_string(static_cast<int64_t>(std::ceil(adm.retry_after_s))));
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    auto meter = std::make_shared<CallMeter>(state_, limiter_, adm.ticket, key.key_id, n);
    // 3. Template, tokens and input moderation, off the I/O threads.
    prep->terms = moderation_.snapshot();
    co_await prepare(prep);
    if (!prep->ok) {
      if (prep->moderated) {
        log(LogLevel::kInfo, "prompt refused by content moderation",
            {.request_id = std::nullopt, .tenant = key.tenant, .model = r.model, .key_id = key.key_id, .extra = {}});
      }
      metrics_.request_refused(route, static_cast<int>(prep->err.status));
      Reply reply = error_reply(prep->err);
      reply.headers = rate_headers;
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    const std::shared_ptr<ModelHost> host = prep->host;
    const size_t prompt_tokens = prep->tokens.size();
    HostRequest base;
    base.prompt = std::move(prep->tokens);
    base.max_tokens = static_cast<int32_t>(max_tokens);
    base.sampling = r.sampling;
    base.stop = r.stop;
    base.ignore_eos = r.ignore_eos;
    base.tenant = key.tenant;
    base.cache_salt = who.tenant.cache_salt;
    base.logprobs = r.logprobs;
    base.filter_terms = prep->terms->output;
    std::string prompt_log;
    if (log_prompts_enabled()) prompt_log = r.chat ? dump_json(r.messages) : r.prompt_text.value_or("(token ids)");

    // 4. One engine request per choice; they share the prompt's KV blocks through the prefix cache.
    auto pending = std::make_shared<Pending>(stream.get_executor());
    std::vector<uint64_t> ids;
    Status submit_error;
    for (int i = 0; i < n && submit_error.is_ok(); ++i) {
      HostRequest one = base;
      if (r.seeded) one.sampling.seed += static_cast<uint64_t>(i);
      HostSink sink = [pending, meter, i](const HostEvent& ev) {
        meter->saw(i, ev.n_tokens);
        {
          MutexLock lock(pending->mu);
          pending->events.emplace_back(i, ev);
        }
        net::post(pending->timer.get_executor(), [pending] {
          pending->notified = true;
          pending->timer.cancel();
        });
      };
      Result<uint64_t> id = host->submit(std::move(one), std::move(sink));
      if (id.ok()) {
        // The prompt counts once the engine has it. (The meter's destructor runs after this:
        // this coroutine still holds it.)
        if (ids.empty()) meter->started(static_cast<int64_t>(prompt_tokens));
        ids.push_back(*id);
      } else {
        submit_error = id.status();
      }
    }
    if (!submit_error.is_ok()) {
      for (uint64_t id : ids) host->cancel(id);
      Reply reply = error_reply(from_status(submit_error));
      reply.headers = rate_headers;
      if (submit_error.code() == Status::Code::kResourceExhausted) reply.headers.emplace_back("Retry-After", "1");
      metrics_.request_refused(route, static_cast<int>(reply.status));
      const bool ok = co_await send(stream, req, reply);
      co_return ok;
    }
    auto cancel_all = [&] {
      for (uint64_t id : ids) host->cancel(id);
    };
    watch_hangup(stream, pending);
    bool watching = true;
    auto stop_watching = [&] {
      if (!watching) return;
      watching = false;
      boost::system::error_code ignored;
      beast::get_lowest_layer(stream).socket().cancel(ignored);
    };

    const std::string cid = random_id(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = now_s();
    const std::string model_id = host->id();
    // The next events, or none when the client hung up.
    auto next_events = [&]() -> net::awaitable<std::deque<std::pair<int, HostEvent>>> {
      for (;;) {
        {
          MutexLock lock(pending->mu);
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
    // Metrics and the log line of the call; its usage object for the client. The usage row
    // itself is the meter's (equal: both count each choice's last n_tokens).
    auto finish_call = [&](int status) -> json {
      int64_t completion = 0;
      for (const Choice& c : choices) completion += c.last.n_tokens;
      const scheduler::RequestMetrics& m = choices[0].last.metrics;
      record_done(model_id, key.tenant, status, prompt_tokens, completion, m);
      if (log_enabled(LogLevel::kInfo)) {
        LogFields f{.request_id = cid, .tenant = key.tenant, .model = model_id, .key_id = key.key_id, .extra = {}};
        f.extra = {{"prompt_tokens", std::to_string(prompt_tokens)},
                   {"cached_tokens", std::to_string(m.num_cached_tokens)},
                   {"completion_tokens", std::to_string(completion)},
                   {"choices", std::to_string(n)},
                   {"ttft_ms", std::to_string(m.first_token_ns >= 0 ? (m.first_token_ns - m.arrival_ns) / 1000000 : -1)},
                   {"stream", r.stream ? "true" : "false"}};
        if (status != 200) f.extra.emplace_back("status", std::to_string(status));
        if (!r.user.empty()) f.extra.emplace_back("user", r.user);
        if (!prompt_log.empty()) f.extra.emplace_back("prompt", prompt_log);
        log(LogLevel::kInfo, chat ? "chat completion" : "completion", f);
      }
      return usage_json(static_cast<int64_t>(prompt_tokens), completion, m.num_cached_tokens);
    };
    // A client that went away: its blocks are freed now; what it generated is metered when
    // the engine reports the cancellation.
    auto hung_up = [&] {
      cancel_all();
      (void)finish_call(499);  // nginx's "client closed request"
    };

    if (!r.stream) {
      while (finished < n && failure.is_ok()) {
        std::deque<std::pair<int, HostEvent>> batch = co_await next_events();
        if (pending->hung_up) {
          hung_up();
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
          }
          c.last.n_tokens = ev.n_tokens;
          if (ev.finish != HostFinish::kNone) c.last = std::move(ev);
        }
      }
      stop_watching();
      if (!failure.is_ok()) {
        cancel_all();
        (void)finish_call(500);
        const Reply reply = error_reply(from_status(failure));
        const bool ok = co_await send(stream, req, reply);
        co_return ok;
      }
      json out_choices = json::array();
      for (int i = 0; i < n; ++i) {
        Choice& c = choices[static_cast<size_t>(i)];
        const bool lp = r.logprobs >= 0;
        json logprobs = !lp ? json(nullptr) : chat ? chat_logprobs(c.logprobs) : completion_logprobs(c.logprobs, c.text_offset);
        out_choices.push_back(chat ? json{{"index", i},
                                          {"message", {{"role", "assistant"}, {"content", c.text}}},
                                          {"logprobs", logprobs},
                                          {"finish_reason", finish_name(c.last.finish)}}
                                   : json{{"index", i},
                                          {"text", c.text},
                                          {"logprobs", logprobs},
                                          {"finish_reason", finish_name(c.last.finish)}});
      }
      json body = {{"id", cid},
                   {"object", chat ? "chat.completion" : "text_completion"},
                   {"created", created},
                   {"model", model_id},
                   {"choices", out_choices},
                   {"usage", finish_call(200)}};
      const Reply reply{http::status::ok, dump_json(body), "application/json", rate_headers, false};
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
    bool ended = false;  // finish_call ran
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
        c.last.n_tokens = ev.n_tokens;
        if (ev.finish == HostFinish::kError) {
          const std::string data = error_body(from_status(ev.error));
          c.last = std::move(ev);
          alive = co_await emit(data);
          c.done = true;
          finished = n;  // an error ends the whole call
          cancel_all();
          (void)finish_call(500);
          ended = true;
          break;
        }
        if (!ev.text.empty() || !ev.logprobs.empty() || ev.finish != HostFinish::kNone) {
          const json finish = ev.finish == HostFinish::kNone ? json(nullptr) : json(finish_name(ev.finish));
          const bool lp = r.logprobs >= 0;
          json logprobs = !lp ? json(nullptr) : chat ? chat_logprobs(ev.logprobs) : completion_logprobs(ev.logprobs, c.text_offset);
          json choice;
          if (chat) {
            json delta = json::object();
            if (first_chunk[static_cast<size_t>(i)]) delta["role"] = "assistant";
            if (!ev.text.empty() || first_chunk[static_cast<size_t>(i)]) delta["content"] = ev.text;
            choice = {{"index", i}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
          } else {
            choice = {{"index", i}, {"text", ev.text}, {"logprobs", logprobs}, {"finish_reason", finish}};
          }
          first_chunk[static_cast<size_t>(i)] = false;
          json chunk = {{"id", cid},
                        {"object", chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created},
                        {"model", model_id},
                        {"choices", json::array({choice})}};
          if (r.include_usage) chunk["usage"] = nullptr;
          const std::string data = dump_json(chunk);
          alive = co_await emit(data);
        }
        if (ev.finish != HostFinish::kNone) {
          c.done = true;
          ++finished;
          c.last = std::move(ev);
          if (finished == n) {
            const json usage = finish_call(200);
            ended = true;
            if (alive && r.include_usage) {
              json u = {{"id", cid},
                        {"object", chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created},
                        {"model", model_id},
                        {"choices", json::array()},
                        {"usage", usage}};
              const std::string data = dump_json(u);
              alive = co_await emit(data);
            }
          }
        }
      }
    }
    stop_watching();
    if (!alive) {
      if (!ended) {
        hung_up();
      } else {
        cancel_all();
      }
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
  ConnTable conns_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> accept_error_logged_{false};
  Mutex calls_mu_;
  CondVar calls_cv_;
  int64_t calls_ SN_GUARDED_BY(calls_mu_) = 0;  // completion calls being answered
  net::io_context ioc_;
  std::optional<net::ssl::context> ssl_;
  bool metrics_tls_ = false;  // the metrics listener is off loopback: TLS like the API
  tcp::acceptor acceptor_;
  tcp::acceptor metrics_acceptor_;
  net::thread_pool prep_pool_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

Server::Server(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation)
    : impl_(std::make_unique<Impl>(std::move(options), state, models, moderation)) {}

Server::~Server() { stop(); }

Status Server::start() { return impl_->start(port_, metrics_port_); }

void Server::stop() { impl_->stop(); }

void Server::begin_drain() { impl_->begin_drain(); }

bool Server::wait_idle(std::chrono::milliseconds timeout) { return impl_->wait_idle(timeout); }

}  // namespace sn::daemon
