// TLS material for supernoded: when no certificate is configured, the daemon makes a
// self-signed one at first start (an ECDSA P-256 key, SHA-256 signature, ten years, subject
// and issuer CN=supernode, alternative names localhost, 127.0.0.1 and the machine's host
// name) and keeps it in the state directory, so clients can pin it across restarts.
// Thread safety: call from main() before serving.
#pragma once

#include <string>

#include "supernode/base/status.h"

namespace sn::daemon {

// Creates `cert_path` and `key_path` (PEM; the key with mode 0600) unless both exist.
// Errors: io_error (cannot write), internal (OpenSSL failed).
[[nodiscard]] Status ensure_self_signed_certificate(const std::string& cert_path, const std::string& key_path);

}  // namespace sn::daemon
