// Env: the storage room's window onto the file system and the clock. Every file access of
// the disk block store goes through it, so tests can wrap it (FaultInjectionEnv) and make
// a disk fill up, an fsync fail, a write land short or torn, or the machine crash; shaped
// after LevelDB's env.h, smaller. Called by DiskBlockStore and by tests; the daemon passes
// posix_env(). Only the POSIX implementation touches the operating system.
//
//   Env& env = posix_env();
//   Result<std::unique_ptr<File>> f = env.open_file("/var/lib/supernode/kv/x.tmp", OpenMode::kWriteTruncate);
//   if (!f.ok()) return f.status();
//   SN_RETURN_IF_ERROR(write_all(**f, 0, bytes));
//   SN_RETURN_IF_ERROR((*f)->sync());
//
// Errors: a failed call returns Status naming the file and the operation, with the
// operating system's text: resource_exhausted for ENOSPC/EDQUOT (a full disk), not_found
// for ENOENT, io_error for the rest.
//
// Thread safety: posix_env() and its files are safe to use from any thread (distinct File
// objects concurrently; one File from one thread at a time). Wrappers say their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"

namespace sn::storage {

// An open file, read or written at explicit offsets. Closed by the destructor (close
// errors are not reported: callers that need durability call sync() first).
class File {
 public:
  virtual ~File() = default;

  // Writes a prefix of `data` at `offset` and returns how many bytes were written: at
  // least 1 unless `data` is empty, possibly fewer than asked (a short write, as POSIX
  // allows). Use write_all() to write everything.
  [[nodiscard]] virtual Result<size_t> pwrite(uint64_t offset, std::string_view data) = 0;
  // Reads up to out.size() bytes at `offset`; returns how many were read, 0 at end of file.
  // Use read_full() to fill `out`.
  [[nodiscard]] virtual Result<size_t> pread(uint64_t offset, std::span<char> out) = 0;
  // Makes everything written so far durable (fdatasync). Data not synced may be lost on a
  // crash; FaultInjectionEnv loses it.
  [[nodiscard]] virtual Status sync() = 0;
  [[nodiscard]] virtual Result<uint64_t> size() = 0;
  [[nodiscard]] virtual const std::string& path() const = 0;
};

enum class OpenMode : uint8_t {
  kRead,           // must exist; read only
  kWriteTruncate,  // created if missing, emptied if present; read and write
};

class Env {
 public:
  virtual ~Env() = default;

  // The caller owns the returned file. not_found when kRead and `path` is missing.
  [[nodiscard]] virtual Result<std::unique_ptr<File>> open_file(const std::string& path, OpenMode mode) = 0;
  // Atomically replaces `to` (if present) with `from`. Durable only after sync_dir() of
  // the directory holding them.
  [[nodiscard]] virtual Status rename_file(const std::string& from, const std::string& to) = 0;
  // not_found when `path` is missing.
  [[nodiscard]] virtual Status remove_file(const std::string& path) = 0;
  // Creates `dir` and its missing parents; ok when it exists.
  [[nodiscard]] virtual Status create_dirs(const std::string& dir) = 0;
  // Makes the directory's entries (creations, renames) durable.
  [[nodiscard]] virtual Status sync_dir(const std::string& dir) = 0;
  // The names (not paths) of the entries in `dir`, in no particular order.
  [[nodiscard]] virtual Result<std::vector<std::string>> list_dir(const std::string& dir) = 0;
  // Bytes an unprivileged writer can still add to the file system holding `dir`.
  [[nodiscard]] virtual Result<uint64_t> free_bytes(const std::string& dir) = 0;
  // A monotonic clock in microseconds (arbitrary origin).
  [[nodiscard]] virtual uint64_t now_micros() = 0;
};

// The process-wide POSIX environment (never destroyed).
[[nodiscard]] Env& posix_env();

// Forwards every call to `target` (which must outlive it); subclasses override what they
// want to change (LevelDB's EnvWrapper).
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env& target) : target_(target) {}
  [[nodiscard]] Env& target() const { return target_; }

  Result<std::unique_ptr<File>> open_file(const std::string& path, OpenMode mode) override {
    return target_.open_file(path, mode);
  }
  Status rename_file(const std::string& from, const std::string& to) override { return target_.rename_file(from, to); }
  Status remove_file(const std::string& path) override { return target_.remove_file(path); }
  Status create_dirs(const std::string& dir) override { return target_.create_dirs(dir); }
  Status sync_dir(const std::string& dir) override { return target_.sync_dir(dir); }
  Result<std::vector<std::string>> list_dir(const std::string& dir) override { return target_.list_dir(dir); }
  Result<uint64_t> free_bytes(const std::string& dir) override { return target_.free_bytes(dir); }
  uint64_t now_micros() override { return target_.now_micros(); }

 private:
  Env& target_;
};

// Writes all of `data` at `offset`, retrying short writes. On failure part of `data` may
// have been written.
[[nodiscard]] Status write_all(File& file, uint64_t offset, std::string_view data);

// Fills `out` from `offset`. Returns how many bytes were read: out.size(), or fewer when
// the file ends first (the caller decides whether that is corruption).
[[nodiscard]] Result<size_t> read_full(File& file, uint64_t offset, std::span<char> out);

}  // namespace sn::storage
