// Hex text and random hex secrets (random_hex.h).
#include "random_hex.h"

#include <openssl/rand.h>

#include <vector>

namespace sn::daemon {

std::string hex_text(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) return "";
  return hex_text(raw.data(), raw.size());
}

}  // namespace sn::daemon
