// FaultInjectionEnv (see fault_injection_env.h): wraps each File opened for writing so
// writes and syncs are tracked per path, and applies the fault switches.
// Thread safety: none; one thread at a time.
#include "supernode/storage/fault_injection_env.h"

#include <cerrno>
#include <system_error>
#include <vector>

namespace sn::storage {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string parent_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultInjectionEnv& env, std::unique_ptr<File> base) : env_(env), base_(std::move(base)) {}

  Result<size_t> pwrite(uint64_t offset, std::string_view data) override {
    if (!env_.tick()) return env_.stopped_status(path(), "pwrite");
    if (env_.disk_full_) return Status::resource_exhausted(path() + ": pwrite", errno_text(ENOSPC));
    if (data.empty()) return size_t{0};
    size_t half = data.size() > 1 ? data.size() / 2 : 1;
    std::string_view lands = (env_.short_writes_ || env_.torn_writes_) ? data.substr(0, half) : data;
    Result<size_t> n = base_->pwrite(offset, lands);
    if (!n.ok()) return n;
    FaultInjectionEnv::FileState& st = env_.files_[path()];
    if (offset + *n > st.size) st.size = offset + *n;
    if (env_.torn_writes_ && *n == lands.size()) return data.size();  // the lie
    return n;
  }

  Result<size_t> pread(uint64_t offset, std::span<char> out) override { return base_->pread(offset, out); }

  Status sync() override {
    if (!env_.tick()) return env_.stopped_status(path(), "fdatasync");
    if (env_.sync_fails_) return Status::io_error(path() + ": fdatasync", errno_text(EIO));
    if (env_.pass_syncs_) SN_RETURN_IF_ERROR(base_->sync());
    FaultInjectionEnv::FileState& st = env_.files_[path()];
    st.synced = st.size;
    ++env_.file_syncs_;
    return Status::ok();
  }

  Result<uint64_t> size() override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectionEnv& env_;
  std::unique_ptr<File> base_;
};

FaultInjectionEnv::FaultInjectionEnv(Env& target, bool pass_syncs) : EnvWrapper(target), pass_syncs_(pass_syncs) {}

bool FaultInjectionEnv::tick() {
  if (stopped_) return false;
  if (crash_countdown_ == 0) {
    stopped_ = true;
    return false;
  }
  if (crash_countdown_ > 0) --crash_countdown_;
  return true;
}

Status FaultInjectionEnv::stopped_status(const std::string& path, const char* op) const {
  return Status::io_error(path + ": " + op, "simulated crash: the file system has stopped");
}

Result<std::unique_ptr<File>> FaultInjectionEnv::open_file(const std::string& path, OpenMode mode) {
  if (mode == OpenMode::kRead) return target().open_file(path, mode);
  if (!tick()) return stopped_status(path, "open");
  Result<std::unique_ptr<File>> f = target().open_file(path, mode);
  if (!f.ok()) return f;
  files_[path] = FileState{};
  new_entries_.insert(path);
  return std::unique_ptr<File>(std::make_unique<FaultFile>(*this, std::move(*f)));
}

Status FaultInjectionEnv::rename_file(const std::string& from, const std::string& to) {
  if (!tick()) return stopped_status(from, "rename");
  SN_RETURN_IF_ERROR(target().rename_file(from, to));
  auto it = files_.find(from);
  if (it != files_.end()) {
    FileState st = it->second;
    files_.erase(it);
    files_[to] = st;
  } else {
    files_.erase(to);  // `to` now holds whatever `from` held durably
  }
  new_entries_.erase(from);
  new_entries_.insert(to);
  return Status::ok();
}

Status FaultInjectionEnv::remove_file(const std::string& path) {
  if (!tick()) return stopped_status(path, "unlink");
  SN_RETURN_IF_ERROR(target().remove_file(path));
  files_.erase(path);
  new_entries_.erase(path);
  return Status::ok();
}

Status FaultInjectionEnv::sync_dir(const std::string& dir) {
  if (!tick()) return stopped_status(dir, "fsync directory");
  if (sync_fails_) return Status::io_error(dir + ": fsync directory", errno_text(EIO));
  if (pass_syncs_) SN_RETURN_IF_ERROR(target().sync_dir(dir));
  for (auto it = new_entries_.begin(); it != new_entries_.end();) {
    it = parent_dir(*it) == dir ? new_entries_.erase(it) : std::next(it);
  }
  return Status::ok();
}

Result<uint64_t> FaultInjectionEnv::free_bytes(const std::string& dir) {
  if (disk_full_) return uint64_t{0};
  return target().free_bytes(dir);
}

Status FaultInjectionEnv::simulate_crash() {
  for (const std::string& path : new_entries_) {
    Status s = target().remove_file(path);
    if (!s.is_ok() && s.code() != Status::Code::kNotFound) return s.with_context("simulate_crash");
    files_.erase(path);
  }
  for (const auto& [path, st] : files_) {
    if (st.size <= st.synced) continue;
    // Cut the file back to its synced length by rewriting that prefix.
    std::vector<char> keep(st.synced);
    {
      Result<std::unique_ptr<File>> in = target().open_file(path, OpenMode::kRead);
      if (!in.ok()) {
        if (in.status().code() == Status::Code::kNotFound) continue;
        return in.status().with_context("simulate_crash");
      }
      Result<size_t> n = read_full(**in, 0, keep);
      if (!n.ok()) return n.status().with_context("simulate_crash");
      keep.resize(*n);
    }
    Result<std::unique_ptr<File>> out = target().open_file(path, OpenMode::kWriteTruncate);
    if (!out.ok()) return out.status().with_context("simulate_crash");
    SN_RETURN_IF_ERROR(write_all(**out, 0, std::string_view(keep.data(), keep.size())));
    if (pass_syncs_) SN_RETURN_IF_ERROR((*out)->sync());
  }
  files_.clear();
  new_entries_.clear();
  disk_full_ = sync_fails_ = short_writes_ = torn_writes_ = false;
  crash_countdown_ = -1;
  stopped_ = false;
  return Status::ok();
}

}  // namespace sn::storage
