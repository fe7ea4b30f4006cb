// Password hashing for the web UI's admin users (state_store.cpp): Argon2id through
// libargon2, stored as the library's encoded string ("$argon2id$v=19$m=...,t=...,p=1$salt$hash"),
// which carries its own salt and cost, so hashes made under older costs keep verifying.
// Keeps argon2.h out of every other file. Nothing here logs; a password is never copied.
// Thread safety: free functions without shared state; safe from any thread. Each call
// allocates the cost's memory (64 MiB by default), so callers bound how many run at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "supernode/base/status.h"

namespace sn::storage {

struct PasswordHashCost {
  uint32_t memory_kib = 65536;
  uint32_t iterations = 3;
};

// The encoded Argon2id hash of `password` under a fresh random 16-byte salt.
// Errors: internal (the random generator or the library failed; the message names why,
// never the password).
[[nodiscard]] Result<std::string> password_hash(std::string_view password, const PasswordHashCost& cost);

// Whether `password` matches `encoded` (from password_hash()). Takes the time of one hash
// under the cost written in `encoded`, matching or not. Errors: corruption (`encoded` is
// not an Argon2id string), internal (the library failed, out of memory say).
[[nodiscard]] Result<bool> password_verify(std::string_view encoded, std::string_view password);

}  // namespace sn::storage
