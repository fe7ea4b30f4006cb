// Writing a secret to disk (the initial API key, a TLS private key, the audit HMAC key): the
// file exists with mode 0600 from its first byte, never with a wider mode for a moment (no
// umask dance, which is process-wide and races other threads), is never written through a
// symlink, and appears whole or not at all (written beside it, fsynced, renamed).
// Thread safety: safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "supernode/base/status.h"

namespace sn {

// Replaces `path` with `data`, mode 0600. Errors: io_error naming the path.
[[nodiscard]] Status write_secret_file(const std::string& path, std::string_view data);

// Reads a secret file written by write_secret_file. Errors: not_found, io_error, and
// invalid_argument when the file is readable by group or others (mode & 077).
[[nodiscard]] Result<std::string> read_secret_file(const std::string& path);

}  // namespace sn
