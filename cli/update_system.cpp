// The real UpdateSystem (fork/exec) and the helpers that read dpkg's and systemd's answers.
// See update_system.h.
#include "update_system.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace sn::cli {
namespace {

constexpr size_t kOutputMax = 64 << 10;

class RealSystem final : public UpdateSystem {
 public:
  Result<CommandResult> run(const std::vector<std::string>& argv, const std::string& cwd) override {
    if (argv.empty()) return Status::invalid_argument("run", "no command");
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return Status::io_error("pipe", std::strerror(errno));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(out[0]);
      ::close(out[1]);
      return Status::io_error("fork", std::strerror(errno));
    }
    if (pid == 0) {
      const int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    CommandResult r;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      r.output.append(buf, static_cast<size_t>(n));
      if (r.output.size() > kOutputMax) r.output.erase(0, r.output.size() - kOutputMax);
    }
    ::close(out[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return r;
  }
  std::chrono::steady_clock::time_point now() override { return std::chrono::steady_clock::now(); }
  void sleep_for(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::unique_ptr<UpdateSystem> real_update_system() { return std::make_unique<RealSystem>(); }

Result<std::optional<std::string>> installed_version(UpdateSystem& sys, const std::string& pkg) {
  Result<CommandResult> r = sys.run({"dpkg-query", "-W", "-f", "${Version}", pkg});
  if (!r.ok()) return r.status();
  if (r->exit_code == 127) return Status::io_error("dpkg-query", "not found on PATH");
  const std::string v = trim(r->output);
  if (r->exit_code != 0 || v.empty()) return std::optional<std::string>();
  return std::optional<std::string>(v);
}

Result<bool> compare_versions(UpdateSystem& sys, const std::string& a, const char* op, const std::string& b) {
  Result<CommandResult> r = sys.run({"dpkg", "--compare-versions", a, op, b});
  if (!r.ok()) return r.status();
  if (r->exit_code == 0) return true;
  if (r->exit_code == 1) return false;
  return Status::io_error("dpkg --compare-versions " + a + " " + op + " " + b,
                          "exit " + std::to_string(r->exit_code) + ": " + trim(r->output));
}

Result<UnitState> unit_state(UpdateSystem& sys, const std::string& unit) {
  Result<CommandResult> r =
      sys.run({"systemctl", "show", "-p", "ActiveState,SubState,ExecMainStartTimestampMonotonic", unit});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::io_error("systemctl show " + unit, "exit " + std::to_string(r->exit_code) + ": " + trim(r->output));
  }
  UnitState s;
  size_t start = 0;
  const std::string& o = r->output;
  while (start < o.size()) {
    const size_t end = std::min(o.find('\n', start), o.size());
    const std::string line = o.substr(start, end - start);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) {
      const std::string k = line.substr(0, eq), v = trim(line.substr(eq + 1));
      if (k == "ActiveState") s.active = v;
      if (k == "SubState") s.sub = v;
      if (k == "ExecMainStartTimestampMonotonic") s.started = v;
    }
    start = end + 1;
  }
  return s;
}

}  // namespace sn::cli
