// The audit key's file (audit_key.h).
#include "supernode/storage/audit_key.h"

#include <openssl/rand.h>

#include <cstdlib>

#include "supernode/base/secret_file.h"

namespace sn::storage {
namespace {

std::string trimmed(std::string s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Result<AuditKey> read_key(const std::string& path) {
  Result<std::string> text = read_secret_file(path);
  if (!text.ok()) return text.status();
  AuditKey k{trimmed(*text), path, false};
  if (k.key.size() < 16) return Status::invalid_argument("audit key " + path, "shorter than 16 bytes");
  return k;
}

}  // namespace

Result<AuditKey> load_audit_key(const std::string& state_dir, const std::string& key_file, bool create) {
  if (!key_file.empty()) return read_key(key_file);
  if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); creds != nullptr && *creds != '\0') {
    Result<AuditKey> k = read_key(std::string(creds) + "/audit-key");
    if (k.ok() || k.status().code() != Status::Code::kNotFound) return k;
  }
  const std::string path = state_dir + "/audit.key";
  Result<AuditKey> k = read_key(path);
  if (k.ok() || k.status().code() != Status::Code::kNotFound || !create) return k;
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Status::internal("audit key", "no random bytes from OpenSSL");
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned char c : raw) {
    text += hex[c >> 4];
    text += hex[c & 15];
  }
  SN_RETURN_IF_ERROR(write_secret_file(path, text + "\n"));
  return AuditKey{text, path, true};
}

}  // namespace sn::storage
