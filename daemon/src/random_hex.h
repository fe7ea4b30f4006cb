// Random secrets as hex text (session ids, CSRF tokens, setup tokens, import ids) and hex
// of bytes, for the admin service and its HTTP transport. OpenSSL's DRBG underneath.
// Thread safety: free functions; safe concurrently.
#pragma once

#include <cstddef>
#include <string>

namespace sn::daemon {

// Lowercase hex of `n` bytes.
[[nodiscard]] std::string hex_text(const unsigned char* p, size_t n);
// `bytes` random bytes as hex (2 x bytes characters); "" when OpenSSL has no randomness.
[[nodiscard]] std::string random_hex(size_t bytes);

}  // namespace sn::daemon
