// The HTTP side of supernoded (Boost.Beast over Boost.Asio, HTTP/1.1 with keep-alive, over
// TLS 1.2+ when given a certificate). Two listeners:
//  - the API: GET /healthz and /readyz without a key; with a key (Authorization: Bearer):
//    GET /v1/models, POST /v1/completions and /v1/chat/completions (streaming as
//    server-sent events, and not). Errors use OpenAI's error object and status codes.
//  - metrics (loopback by default): GET /metrics in Prometheus' format, /healthz, /readyz.
//    Tenants' keys never see other tenants' figures: /metrics is not on the API listener.
//  - the admin API (/api/admin/, daemon/ADMIN_API.md) and the web UI (/, /assets/), behind
//    an admin session: on the API's listener, or on a listener of their own (admin_listen).
// The route tables are in one place (server.cpp's build_routes, router.h).
// The key is checked on the request's headers, before its body is read; the quota is
// admitted before any expensive work; chat templates render and prompts tokenize on a
// small pool of their own, off the I/O threads. Connections are capped in total and per
// client address; accept errors (EMFILE) back off. Requests run on the ModelHosts; the
// tenant's cache salt comes from the StateStore, never from the client. Every token a
// model generates is metered (usage row, quota), however the request ends.
//
//   Server server(ServerOptions{.listen = "127.0.0.1:8080"}, state, hosts, moderation);
//   Status st = server.start();      // binds; then serve on its own threads
//   server.stop();                   // closes the listeners, ends connections
//
// Thread safety: start and stop from one thread; the server runs its own I/O threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/moderation.h"
#include "supernode/storage/state_store.h"

namespace sn::daemon {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  int io_threads = 2;
  size_t max_body_bytes = 4u << 20;
  size_t max_header_bytes = 16u << 10;
  int idle_timeout_s = 60;  // a connection that sends nothing for this long is closed
  std::string tls_cert;     // PEM chain and key: HTTPS (TLS 1.2+) when both are set
  std::string tls_key;
  int listen_fd = -1;       // >= 0: serve on this listening socket (socket activation), not `listen`
  int io_nice = 0;          // the I/O threads' nice value (0: as the process)
  int max_connections = 4096;              // open client connections, both listeners
  int max_connections_per_address = 1024;  // from one client address
  std::string metrics_listen;              // host:port of /metrics; empty: none
  int prep_threads = 2;                    // render + tokenize threads
  bool admin_enabled = true;               // the admin API and web UI (needs an AdminService)
  std::string admin_listen;                // host:port of their own listener; empty: the API's
  int admin_session_idle_s = 1800;         // an admin session ends after this long unused
  std::string version;                     // GET /api/admin/state's version
};

class AdminService;

class Server {
 public:
  // `state`, `models`, `moderation` and `admin` must outlive the server; models come and go
  // while it serves, and moderation terms change. Without `admin` there is no admin API.
  Server(ServerOptions options, storage::StateStore& state, ModelRegistry& models, const Moderation& moderation,
         AdminService* admin = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket and starts the I/O threads. Errors: invalid_argument (a bad
  // listen address), io_error (cannot bind).
  [[nodiscard]] Status start();
  // The bound ports (after start); metrics_port() 0 without a metrics listener.
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] uint16_t metrics_port() const { return metrics_port_; }
  [[nodiscard]] uint16_t admin_port() const { return admin_port_; }  // 0: on the API's port
  // Stops accepting, closes connections, joins the I/O threads. Idempotent.
  void stop();
  // From now on completion requests get 503 "shutting down" (Retry-After: 5); the rest of
  // the API and requests in flight go on. For a bounded drain before stop().
  void begin_drain();
  // Waits until no completion response is being computed or written (or `timeout`); true
  // when idle. After begin_drain, before stop.
  [[nodiscard]] bool wait_idle(std::chrono::milliseconds timeout);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
  uint16_t admin_port_ = 0;
};

}  // namespace sn::daemon
