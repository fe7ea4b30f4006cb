// supernoded under systemd (image/systemd/supernode.service, Type=notify): readiness and
// status through $NOTIFY_SOCKET, the watchdog ($WATCHDOG_USEC), and socket activation
// ($LISTEN_FDS, from supernode.socket). Every function is a harmless no-op when the daemon
// is not run by systemd, so main() calls them unconditionally:
//
//   std::vector<int> fds = listen_fds();            // before anything else opens fds
//   ... load models, notify_status("loading model llama") on the way ...
//   notify_ready("serving 2 models on 0.0.0.0:8443");
//   if (auto every = watchdog_interval()) { /* notify_watchdog() every *every / 2 while the loop moves */ }
//   ... on SIGHUP: notify_reloading(); re-read; notify_ready("...");
//   ... on SIGTERM: notify_stopping(); drain; exit
//
// Thread safety: the notify_* functions and watchdog_interval may be called from any
// thread. listen_fds() is for main() at start-up only: it unsets LISTEN_* in the
// environment (so children do not take the sockets) and setenv is not thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

namespace sn::daemon {

// READY=1 with STATUS=<status>: start-up is complete (models loaded, listening). Also sent
// after a reload has been applied.
void notify_ready(std::string_view status);
// STATUS=<status>: a one-line state shown by `systemctl status supernode`.
void notify_status(std::string_view status);
// RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants): a reload began; send
// notify_ready when it is done.
void notify_reloading();
// STOPPING=1: shutdown began (draining requests).
void notify_stopping();
// EXTEND_TIMEOUT_USEC: asks for `more` beyond the unit's start or stop timeout, for a long
// model load or drain. Each call restarts the extension from now.
void notify_extend_timeout(std::chrono::microseconds more);

// The watchdog period (WatchdogSec=) when the service manager watches this process,
// nullopt otherwise. Ping with notify_watchdog() at least every half of it.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval();
// WATCHDOG=1: "still alive". Send it only from a thread that sees the serving loop make
// progress, so a wedged engine gets the process restarted.
void notify_watchdog();

// The listening sockets passed by socket activation, in the order of the socket unit's
// Listen* lines (SD_LISTEN_FDS_START, 3, onwards), each marked close-on-exec; empty when
// none were passed or LISTEN_PID is another process. The caller owns the fds.
// Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, so a second call returns empty.
[[nodiscard]] std::vector<int> listen_fds();

}  // namespace sn::daemon
