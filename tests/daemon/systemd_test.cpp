// supernoded's systemd integration and logging, against the real protocol: notify messages
// received on a Unix datagram socket bound in a temporary directory (as systemd's
// $NOTIFY_SOCKET), the watchdog period from WATCHDOG_USEC/WATCHDOG_PID, a real listening
// socket passed as fd 3 through LISTEN_FDS/LISTEN_PID (fd 3 is restored afterwards), and
// log lines read back from a pipe put over stderr, including the level threshold, escaping
// of client-supplied values and the JOURNAL_STREAM check.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "supernode/daemon/log.h"
#include "supernode/daemon/systemd.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::daemon::LogFields;
using sn::daemon::LogLevel;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Sets an environment variable for the scope and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value->c_str(), 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A Unix datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  NotifySocket() : path_(dir_.file("notify.sock")) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    bound_ = fd_ >= 0 && path_.size() < sizeof a.sun_path &&
             ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{.tv_sec = 0, .tv_usec = 300000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  // The next datagram, or "" after the timeout.
  [[nodiscard]] std::string receive() const {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  sn::testing::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

// What `fn` writes to fd 2, through a pipe put over it for the call.
std::string capture_stderr(const std::function<void()>& fn) {
  std::fflush(stderr);
  int p[2];
  if (::pipe(p) != 0) return "<pipe failed>";
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(p[1], STDERR_FILENO);
  ::close(p[1]);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  return out;
}

}  // namespace

TEST_GROUP(Systemd){};

TEST(Systemd, NotifySendsReadyStatusAndTheRest) {
  NotifySocket sock;
  CHECK_TEXT(sock.bound(), sock.path().c_str());
  ScopedEnv env("NOTIFY_SOCKET", sock.path());
  sn::daemon::notify_ready("serving 2 models on 127.0.0.1:8443");
  const std::string ready = sock.receive();
  CHECK_TEXT(has(ready, "READY=1"), ready.c_str());
  CHECK_TEXT(has(ready, "STATUS=serving 2 models on 127.0.0.1:8443"), ready.c_str());

  // A newline in status text cannot smuggle in another assignment.
  sn::daemon::notify_status("loading\nREADY=1");
  const std::string status = sock.receive();
  STRCMP_EQUAL("STATUS=loading READY=1", status.c_str());

  sn::daemon::notify_watchdog();
  STRCMP_EQUAL("WATCHDOG=1", sock.receive().c_str());
  sn::daemon::notify_reloading();
  const std::string reloading = sock.receive();
  CHECK_TEXT(has(reloading, "RELOADING=1\nMONOTONIC_USEC="), reloading.c_str());
  sn::daemon::notify_extend_timeout(std::chrono::seconds(90));
  STRCMP_EQUAL("EXTEND_TIMEOUT_USEC=90000000", sock.receive().c_str());
  sn::daemon::notify_stopping();
  STRCMP_EQUAL("STOPPING=1", sock.receive().c_str());
  // The variable stays for later messages.
  CHECK_TRUE(std::getenv("NOTIFY_SOCKET") != nullptr);
}

TEST(Systemd, NotifyWithoutAManagerDoesNothing) {
  NotifySocket sock;
  ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
  sn::daemon::notify_ready("ready");
  sn::daemon::notify_watchdog();
  STRCMP_EQUAL("", sock.receive().c_str());
}

TEST(Systemd, WatchdogIntervalFromTheEnvironment) {
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK_FALSE(sn::daemon::watchdog_interval().has_value());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    std::optional<std::chrono::microseconds> w = sn::daemon::watchdog_interval();
    CHECK_TRUE(w.has_value());
    LONGS_EQUAL(30000000, w->count());
  }
  {
    // Meant for another process (our parent, say): not ours to ping.
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() == 1 ? 2 : 1));
    CHECK_FALSE(sn::daemon::watchdog_interval().has_value());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "soon");
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK_FALSE(sn::daemon::watchdog_interval().has_value());
  }
}

TEST(Systemd, ListenFdsTakesTheActivatedSocket) {
  // Keep whatever the test binary has on fd 3 and put it back at the end.
  const int fd3_flags = ::fcntl(3, F_GETFD);
  const int saved3 = fd3_flags >= 0 ? ::fcntl(3, F_DUPFD_CLOEXEC, 100) : -1;

  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQUAL(0, ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a));
  CHECK_EQUAL(0, ::listen(s, 4));
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);
  if (s != 3) {  // with fd 3 free, socket() may have returned it already
    CHECK_EQUAL(3, ::dup2(s, 3));
    ::close(s);
  }

  std::vector<int> fds;
  std::vector<int> again;
  std::vector<int> other;
  {
    ScopedEnv pid("LISTEN_PID", std::to_string(::getpid()));
    ScopedEnv n("LISTEN_FDS", "1");
    ScopedEnv names("LISTEN_FDNAMES", "supernode.socket");
    fds = sn::daemon::listen_fds();
    CHECK_TRUE(std::getenv("LISTEN_FDS") == nullptr);  // children will not take it
    CHECK_TRUE(std::getenv("LISTEN_PID") == nullptr);
    again = sn::daemon::listen_fds();
  }
  {
    ScopedEnv pid("LISTEN_PID", std::to_string(::getpid() == 1 ? 2 : 1));
    ScopedEnv n("LISTEN_FDS", "1");
    other = sn::daemon::listen_fds();
  }
  const int cloexec = ::fcntl(3, F_GETFD) & FD_CLOEXEC;
  sockaddr_in b{};
  len = sizeof b;
  ::getsockname(3, reinterpret_cast<sockaddr*>(&b), &len);

  ::close(3);
  if (saved3 >= 0) {
    ::dup2(saved3, 3);
    ::fcntl(3, F_SETFD, fd3_flags);
    ::close(saved3);
  }

  LONGS_EQUAL(1, fds.size());
  LONGS_EQUAL(3, fds[0]);
  CHECK_TRUE(cloexec != 0);
  LONGS_EQUAL(port, ntohs(b.sin_port));
  CHECK_TRUE(again.empty());
  CHECK_TRUE(other.empty());
}

TEST(Systemd, LogLineFormat) {
  STRCMP_EQUAL("supernoded: info: model loaded\n",
               sn::daemon::format_log_line(LogLevel::kInfo, "model loaded", {}).c_str());
  const LogFields f{.request_id = "r-17", .tenant = "acme", .model = "llama", .key_id = "k_3f9a",
                    .extra = {{"latency_ms", "912"}}};
  STRCMP_EQUAL("supernoded: warning: request cancelled [request_id=r-17 tenant=acme model=llama key_id=k_3f9a latency_ms=912]\n",
               sn::daemon::format_log_line(LogLevel::kWarning, "request cancelled", f).c_str());
  // Values from clients are escaped and quoted: one entry stays one line.
  const LogFields evil{.tenant = "a b", .extra = {{"ua", "x]\nsupernoded: error: forged \"entry\""}}};
  const std::string line = sn::daemon::format_log_line(LogLevel::kError, "bad\x1b[2Jrequest\n", evil);
  STRCMP_EQUAL(
      "supernoded: error: bad\\x1b[2Jrequest\\n [tenant=\"a b\" ua=\"x]\\nsupernoded: error: forged \\\"entry\\\"\"]\n",
      line.c_str());
  LONGS_EQUAL(1, std::count(line.begin(), line.end(), '\n'));
}

TEST(Systemd, LogWritesStderrAboveTheLevel) {
  ScopedEnv journal("JOURNAL_STREAM", std::nullopt);
  const LogLevel before = sn::daemon::log_level();
  sn::daemon::set_log_level(LogLevel::kWarning);
  CHECK_FALSE(sn::daemon::log_enabled(LogLevel::kInfo));
  CHECK_TRUE(sn::daemon::log_enabled(LogLevel::kError));
  const std::string out = capture_stderr([] {
    sn::daemon::log(LogLevel::kDebug, "dropped debug");
    sn::daemon::log(LogLevel::kInfo, "dropped info");
    sn::daemon::log(LogLevel::kWarning, "quota exceeded", {.tenant = "acme", .key_id = "k1"});
    sn::daemon::log(LogLevel::kError, "disk full");
  });
  sn::daemon::set_log_level(before);
  STRCMP_EQUAL("supernoded: warning: quota exceeded [tenant=acme key_id=k1]\nsupernoded: error: disk full\n", out.c_str());

  sn::daemon::set_log_level(LogLevel::kDebug);
  const std::string debug = capture_stderr([] { sn::daemon::log(LogLevel::kDebug, "now shown"); });
  sn::daemon::set_log_level(before);
  STRCMP_EQUAL("supernoded: debug: now shown\n", debug.c_str());
}

TEST(Systemd, LogLevelNamesAndPromptSwitch) {
  for (const LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    CHECK_TRUE(sn::daemon::parse_log_level(sn::daemon::log_level_name(l)) == l);
  }
  CHECK_FALSE(sn::daemon::parse_log_level("warn").has_value());
  CHECK_FALSE(sn::daemon::parse_log_level("INFO").has_value());
  CHECK_FALSE(sn::daemon::log_prompts_enabled());  // never by default
  sn::daemon::set_log_prompts(true);
  CHECK_TRUE(sn::daemon::log_prompts_enabled());
  sn::daemon::set_log_prompts(false);
}

TEST(Systemd, JournalStreamMustNameStderr) {
  std::string matching;
  std::string other;
  bool with_match = true;
  bool with_other = true;
  bool with_garbage = true;
  bool without = true;
  (void)capture_stderr([&] {
    struct stat st {};
    ::fstat(STDERR_FILENO, &st);
    matching = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
    {
      ScopedEnv j("JOURNAL_STREAM", matching);
      with_match = sn::daemon::stderr_is_journal();
    }
    {
      ScopedEnv j("JOURNAL_STREAM", other);
      with_other = sn::daemon::stderr_is_journal();
    }
    {
      ScopedEnv j("JOURNAL_STREAM", matching + "x");
      with_garbage = sn::daemon::stderr_is_journal();
    }
    {
      ScopedEnv j("JOURNAL_STREAM", std::nullopt);
      without = sn::daemon::stderr_is_journal();
    }
  });
  CHECK_TEXT(with_match, matching.c_str());
  CHECK_FALSE(with_other);
  CHECK_FALSE(with_garbage);
  CHECK_FALSE(without);
}
