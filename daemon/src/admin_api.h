// The HTTP admin API (daemon/ADMIN_API.md): JSON under /api/admin/ for the web UI and
// scripts, a transport of the AdminService as the Unix socket is. It owns the web UI's
// sessions (a cookie plus a CSRF token per session, ended after an idle time or at logout,
// a new id at every login) and the login throttle (five wrong passwords lock a user for a
// growing delay; twenty lock the client address). The router calls authorize() on a
// request's headers before its body is read. Blocking service calls (SQLite, imports, model
// loads, Argon2) run on a small pool of their own, off the I/O threads.
// Thread safety: add_routes before serving; the rest from any connection's strand.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "supernode/daemon/admin_service.h"
#include "supernode/daemon/metrics.h"
#include "supernode/daemon/model_registry.h"

#include "router.h"

namespace sn::daemon {

struct AdminApiOptions {
  int session_idle_timeout_s = 1800;
  std::string version;
  int max_sessions = 1024;  // the oldest session ends when a login would exceed this
};

// An admin-format error answer: {"error": {"message", "code"}}.
[[nodiscard]] Reply admin_error(http::status status, const std::string& message, const std::string& code);

class AdminApi {
 public:
  AdminApi(AdminApiOptions options, AdminService& service, Metrics& metrics, ModelRegistry& models);
  ~AdminApi();
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  void add_routes(Router& router);

  // The session of a request's headers for a route guarded by `guard`: false with
  // `refusal` (401 without a live session, 403 for a missing or wrong CSRF token on a
  // state-changing method, 403 for an auditor on a route that needs the admin role).
  [[nodiscard]] bool authorize(const http::request_header<>& head, Guard guard, const std::string& client_addr,
                               std::optional<AdminSession>& session, Reply& refusal);

  // Joins the blocking pool (at stop).
  void join();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sn::daemon
