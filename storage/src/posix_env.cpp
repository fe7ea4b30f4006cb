// The POSIX Env: files through open/pwrite/pread/fdatasync, directories through
// std::filesystem and fsync of a directory descriptor, the clock from steady_clock. The only
// place in the storage room that talks to the operating system.
// Thread safety: stateless apart from open descriptors; safe from any thread.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "supernode/storage/env.h"

namespace sn::storage {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// "path: op" with the errno text as detail, under the code a caller can act on.
Status errno_status(const std::string& path, const char* op, int err) {
  std::string context = path + ": " + op;
  if (err == ENOSPC || err == EDQUOT) return Status::resource_exhausted(context, errno_text(err));
  if (err == ENOENT) return Status::not_found(context, errno_text(err));
  return Status::io_error(context, errno_text(err));
}

Status ec_status(const std::string& path, const char* op, const std::error_code& ec) {
  if (ec.category() == std::generic_category() || ec.category() == std::system_category()) {
    return errno_status(path, op, ec.value());
  }
  return Status::io_error(path + ": " + op, ec.message());
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<size_t> pwrite(uint64_t offset, std::string_view data) override {
    if (data.empty()) return size_t{0};
    for (;;) {
      ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return errno_status(path_, "pwrite", errno);
    }
  }

  Result<size_t> pread(uint64_t offset, std::span<char> out) override {
    if (out.empty()) return size_t{0};
    for (;;) {
      ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return errno_status(path_, "pread", errno);
    }
  }

  Status sync() override {
    // fdatasync also flushes the file size, which is all the metadata a reader needs.
    if (::fdatasync(fd_) != 0) return errno_status(path_, "fdatasync", errno);
    return Status::ok();
  }

  Result<uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status(path_, "fstat", errno);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> open_file(const std::string& path, OpenMode mode) override {
    int flags = O_CLOEXEC | (mode == OpenMode::kRead ? O_RDONLY : (O_RDWR | O_CREAT | O_TRUNC));
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0600);  // KV blocks and the like: the service's alone
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno_status(path, "open", errno);
    return std::unique_ptr<File>(std::make_unique<PosixFile>(path, fd));
  }

  Status rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status(from, ("rename to " + to).c_str(), errno);
    return Status::ok();
  }

  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status(path, "unlink", errno);
    return Status::ok();
  }

  Status create_dirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ec_status(dir, "create directory", ec);
    return Status::ok();
  }

  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status(dir, "open directory", errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errno_status(dir, "fsync directory", err);
    return Status::ok();
  }

  Result<std::vector<std::string>> list_dir(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) return ec_status(dir, "list directory", ec);
    std::vector<std::string> names;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) return ec_status(dir, "list directory", ec);
    return names;
  }

  Result<uint64_t> free_bytes(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::space_info info = std::filesystem::space(dir, ec);
    if (ec) return ec_status(dir, "free space", ec);
    return static_cast<uint64_t>(info.available);
  }

  uint64_t now_micros() override {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
};

}  // namespace

Env& posix_env() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: usable from static destructors
  return *env;
}

}  // namespace sn::storage
