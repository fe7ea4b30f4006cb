// systemd notify, watchdog and socket activation through libsystemd. See systemd.h.
#include "supernode/daemon/systemd.h"

#include <time.h>

#include <string>

#include <systemd/sd-daemon.h>

namespace sn::daemon {
namespace {

// One notify message line per assignment: a newline inside a value would start another
// assignment, so status text keeps to one line.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

void notify(const std::string& message) {
  // 0: keep NOTIFY_SOCKET for later messages. Errors (no manager, socket gone) are
  // deliberately ignored: notification is advisory.
  (void)sd_notify(0, message.c_str());
}

}  // namespace

void notify_ready(std::string_view status) { notify("READY=1\nSTATUS=" + one_line(status)); }

void notify_status(std::string_view status) { notify("STATUS=" + one_line(status)); }

void notify_reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ull + static_cast<unsigned long long>(ts.tv_nsec) / 1000ull;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void notify_stopping() { notify("STOPPING=1"); }

void notify_extend_timeout(std::chrono::microseconds more) {
  notify("EXTEND_TIMEOUT_USEC=" + std::to_string(more.count() > 0 ? more.count() : 0));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(static_cast<int64_t>(usec));
}

void notify_watchdog() { notify("WATCHDOG=1"); }

std::vector<int> listen_fds() {
  std::vector<int> fds;
  const int n = sd_listen_fds(1);
  for (int i = 0; i < n; ++i) fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
}

}  // namespace sn::daemon
