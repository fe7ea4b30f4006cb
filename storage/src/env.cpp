// write_all / read_full: the retry loops every Env user needs (see env.h).
// Thread safety: as safe as the File they are given.
#include "supernode/storage/env.h"

namespace sn::storage {

Status write_all(File& file, uint64_t offset, std::string_view data) {
  while (!data.empty()) {
    Result<size_t> n = file.pwrite(offset, data);
    if (!n.ok()) return n.status();
    if (*n == 0 || *n > data.size()) {
      return Status::io_error(file.path(), "pwrite reported " + std::to_string(*n) + " bytes for a write of " +
                                               std::to_string(data.size()));
    }
    offset += *n;
    data.remove_prefix(*n);
  }
  return Status::ok();
}

Result<size_t> read_full(File& file, uint64_t offset, std::span<char> out) {
  size_t done = 0;
  while (done < out.size()) {
    Result<size_t> n = file.pread(offset + done, out.subspan(done));
    if (!n.ok()) return n.status();
    if (*n == 0) break;  // end of file
    done += *n;
  }
  return done;
}

}  // namespace sn::storage
