// FaultInjectionEnv: an Env wrapper for tests that makes the disk misbehave on request and
// can simulate a power loss (after LevelDB's fault_injection_test.cc and db_test's
// SpecialEnv). Used by the storage tests and by any room's tests that drive the disk tier.
//
// The crash model: data written to a file is durable only up to the file's last sync(); a
// directory entry created (open for writing) or renamed is durable only after sync_dir() of
// its directory. simulate_crash() makes the target look like that: files are cut back to
// their synced length and entries not yet made durable are removed. Conservative where the
// real world is kinder: an unsynced rename loses the file under both names (a real file
// system keeps one), and an overwrite inside an already synced range is not undone (the
// block store never overwrites).
//
//   FaultInjectionEnv env(posix_env());
//   env.set_crash_after(3);          // the 4th mutating call and all after it fail
//   (void)store->put(key, bytes);    // dies part-way
//   SN_CHECK(env.simulate_crash().is_ok());   // power loss; the disk works again
//
// Thread safety: none; one thread at a time (tests).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "supernode/storage/env.h"

namespace sn::storage {

class FaultInjectionEnv final : public EnvWrapper {
 public:
  // With `pass_syncs` false, sync() and sync_dir() are recorded, not forwarded: durability
  // is modelled here, and tests do not pay for real fsyncs. `target` must outlive this.
  explicit FaultInjectionEnv(Env& target, bool pass_syncs = false);

  // Disk full: File::pwrite fails with resource_exhausted (ENOSPC) and free_bytes() reports 0.
  void set_disk_full(bool on) { disk_full_ = on; }
  // File::sync() and sync_dir() fail with io_error (EIO) and make nothing durable.
  void set_sync_fails(bool on) { sync_fails_ = on; }
  // File::pwrite writes about half of what it is given (at least one byte) and says so.
  void set_short_writes(bool on) { short_writes_ = on; }
  // Torn writes: File::pwrite lands only the first half of what it is given but reports the
  // whole write as done (a lying disk, or a crash inside a write that was not synced).
  void set_torn_writes(bool on) { torn_writes_ = on; }
  // After `n` more mutating calls (open for writing, pwrite, sync, rename, remove, sync_dir)
  // the file system stops: every later mutating call fails with io_error "simulated crash"
  // and changes nothing. Reads still work. n < 0 disarms.
  void set_crash_after(int64_t n) { crash_countdown_ = n; }
  // Whether the file system has stopped (set_crash_after ran out).
  [[nodiscard]] bool stopped() const { return stopped_; }

  // Power loss, then reboot: unsynced data and entries are dropped from the target (see
  // the top of this file), every switch and the crash countdown are cleared, and tracking
  // starts afresh. REQUIRES: no File opened through this env is still open.
  [[nodiscard]] Status simulate_crash();

  // A manual clock: starts at 1 s and moves only through advance_clock().
  uint64_t now_micros() override { return now_us_; }
  void advance_clock(uint64_t micros) { now_us_ += micros; }

  // How many File::sync() calls succeeded (recorded or forwarded).
  [[nodiscard]] uint64_t file_syncs() const { return file_syncs_; }

  Result<std::unique_ptr<File>> open_file(const std::string& path, OpenMode mode) override;
  Status rename_file(const std::string& from, const std::string& to) override;
  Status remove_file(const std::string& path) override;
  Status sync_dir(const std::string& dir) override;
  Result<uint64_t> free_bytes(const std::string& dir) override;

 private:
  friend class FaultFile;

  struct FileState {
    uint64_t size = 0;    // bytes that reached the target
    uint64_t synced = 0;  // bytes durable across a crash
  };

  // Counts one mutating call; false when the file system has stopped.
  bool tick();
  Status stopped_status(const std::string& path, const char* op) const;

  bool pass_syncs_;
  bool disk_full_ = false;
  bool sync_fails_ = false;
  bool short_writes_ = false;
  bool torn_writes_ = false;
  int64_t crash_countdown_ = -1;
  bool stopped_ = false;
  uint64_t now_us_ = 1'000'000;
  uint64_t file_syncs_ = 0;
  std::map<std::string, FileState> files_;  // files written since the last crash
  std::set<std::string> new_entries_;       // paths created or renamed to, not yet dir-synced
};

}  // namespace sn::storage
