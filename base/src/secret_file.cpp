// Secret files (secret_file.h).
#include "supernode/base/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sn {

Status write_secret_file(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  (void)::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io_error(path, std::string("cannot create: ") + std::strerror(errno));
  Status st;
  if (::fchmod(fd, 0600) != 0) st = Status::io_error(path, std::string("chmod: ") + std::strerror(errno));
  for (size_t off = 0; st.is_ok() && off < data.size();) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = Status::io_error(path, std::string("write: ") + std::strerror(errno));
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (st.is_ok() && ::fsync(fd) != 0) st = Status::io_error(path, std::string("fsync: ") + std::strerror(errno));
  ::close(fd);
  if (st.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Status::io_error(path, std::string("rename: ") + std::strerror(errno));
  }
  if (!st.is_ok()) (void)::unlink(tmp.c_str());
  return st;
}

Result<std::string> read_secret_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::not_found(path, "no such file");
    return Status::io_error(path, std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::io_error(path, "not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::invalid_argument(path, std::string("is readable by group or others (mode ") + mode + "); make it 0600");
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Status::io_error(path, std::strerror(errno));
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) {
      ::close(fd);
      return Status::io_error(path, "larger than 1 MiB");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace sn
