// Argon2id password hashes (password_hash.h) over Debian's libargon2, salts from OpenSSL's
// RAND_bytes. One lane (p = 1): the cost is set by memory and passes, and a login does not
// take several cores of a box that serves models.
#include "password_hash.h"

#include <argon2.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>

namespace sn::storage {
namespace {

constexpr uint32_t kLanes = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

}  // namespace

Result<std::string> password_hash(std::string_view password, const PasswordHashCost& cost) {
  std::array<unsigned char, kSaltBytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return Status::internal("password hash", "the system random generator failed");
  }
  std::string encoded(argon2_encodedlen(cost.iterations, cost.memory_kib, kLanes, salt.size(), kHashBytes, Argon2_id),
                      '\0');
  const int rc = argon2id_hash_encoded(cost.iterations, cost.memory_kib, kLanes, password.data(), password.size(),
                                       salt.data(), salt.size(), kHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Status::internal("password hash", argon2_error_message(rc));
  encoded.resize(std::strlen(encoded.c_str()));  // argon2_encodedlen is an upper bound, terminator included
  return encoded;
}

Result<bool> password_verify(std::string_view encoded, std::string_view password) {
  if (encoded.rfind("$argon2id$", 0) != 0) {
    return Status::corruption("password hash", "the stored hash is not an Argon2id string");
  }
  const std::string terminated(encoded);  // argon2id_verify reads a C string
  const int rc = argon2id_verify(terminated.c_str(), password.data(), password.size());
  if (rc == ARGON2_OK) return true;
  if (rc == ARGON2_VERIFY_MISMATCH) return false;
  if (rc == ARGON2_DECODING_FAIL || rc == ARGON2_INCORRECT_TYPE || rc == ARGON2_SALT_TOO_SHORT ||
      rc == ARGON2_MEMORY_TOO_LITTLE || rc == ARGON2_TIME_TOO_SMALL) {
    return Status::corruption("password hash", std::string("the stored hash does not decode: ") + argon2_error_message(rc));
  }
  return Status::internal("password verify", argon2_error_message(rc));
}

}  // namespace sn::storage
