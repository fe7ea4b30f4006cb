// Everything `supernode update apply` asks of the machine, behind one small interface so the
// apply logic never runs a command itself: dpkg, dpkg-query, dpkg-repack, systemctl and curl
// go through UpdateSystem::run, time through now()/sleep_for(). The real system (fork/exec
// on $PATH) is what the tool uses; the tests put fake dpkg/systemctl scripts first on PATH,
// and an in-process fake only has to implement these three members.
// The helpers below turn command output into values. Thread safety: one caller at a time.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supernode/base/status.h"

namespace sn::cli {

struct CommandResult {
  int exit_code = -1;   // 127: not found
  std::string output;   // stdout and stderr together (the last 64 KiB)
};

class UpdateSystem {
 public:
  virtual ~UpdateSystem() = default;
  // Runs argv[0] (looked up on PATH) with `cwd` as working directory (empty: ours), stdin
  // from /dev/null. Errors: io_error when it cannot be started at all.
  [[nodiscard]] virtual Result<CommandResult> run(const std::vector<std::string>& argv, const std::string& cwd = {}) = 0;
  [[nodiscard]] virtual std::chrono::steady_clock::time_point now() = 0;
  virtual void sleep_for(std::chrono::milliseconds d) = 0;
};

// fork/exec with the process's PATH.
[[nodiscard]] std::unique_ptr<UpdateSystem> real_update_system();

// The installed version of package `pkg` (dpkg-query -W -f '${Version}'); nullopt when it is
// not installed. Errors: io_error when dpkg-query cannot run.
[[nodiscard]] Result<std::optional<std::string>> installed_version(UpdateSystem& sys, const std::string& pkg);

// dpkg --compare-versions A OP B (OP: lt, le, eq, ge, gt). Errors: when dpkg cannot run.
[[nodiscard]] Result<bool> compare_versions(UpdateSystem& sys, const std::string& a, const char* op, const std::string& b);

// `systemctl show -p ActiveState,SubState,ExecMainStartTimestampMonotonic UNIT`.
struct UnitState {
  std::string active;  // active, activating, failed, inactive, ...
  std::string sub;     // running, start, dead, ...
  std::string started; // ExecMainStartTimestampMonotonic: changes when the service restarts
  [[nodiscard]] bool ready() const { return active == "active" && sub == "running"; }
  [[nodiscard]] std::string text() const { return "ActiveState=" + active + ", SubState=" + sub; }
};
[[nodiscard]] Result<UnitState> unit_state(UpdateSystem& sys, const std::string& unit);

}  // namespace sn::cli
