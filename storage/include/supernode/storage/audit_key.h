// The audit key: the HMAC key of the state store's audit chain (StateStoreOptions::
// audit_key), kept outside the database so that someone able to write the database
// cannot recompute the chain after an edit. Both supernoded and `supernode restore` find
// it the same way:
//   1. `key_file` when given ([audit] key_file in the config, --audit-key on the CLI);
//   2. else $CREDENTIALS_DIRECTORY/audit-key, when systemd passed one (LoadCredential=);
//   3. else STATE_DIR/audit.key, made at first start (32 random bytes as 64 hex digits,
//      mode 0600) when `create` is set.
// The file holds text; surrounding whitespace is ignored. A file readable by group or
// others is refused.
// Thread safety: plain functions; safe from any thread.
#pragma once

#include <string>

#include "supernode/base/status.h"

namespace sn::storage {

struct AuditKey {
  std::string key;   // the bytes to use
  std::string path;  // where it came from (for logs; never log the key)
  bool created = false;
};

// Errors: not_found (no key anywhere and !create), io_error, invalid_argument (too short:
// under 16 bytes, or readable by others).
[[nodiscard]] Result<AuditKey> load_audit_key(const std::string& state_dir, const std::string& key_file, bool create);

}  // namespace sn::storage
