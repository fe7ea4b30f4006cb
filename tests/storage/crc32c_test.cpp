// CRC-32C: known vectors (RFC 3720 appendix B.4) and the fast path against the reference.
#include <random>
#include <string>

#include "supernode/storage/crc32c.h"

#include <CppUTest/TestHarness.h>

using namespace sn::storage;

TEST_GROUP(Crc32c){};

TEST(Crc32c, KnownVectors) {
  UNSIGNED_LONGS_EQUAL(0u, crc32c(""));
  UNSIGNED_LONGS_EQUAL(0xE3069283u, crc32c("123456789"));
  UNSIGNED_LONGS_EQUAL(0x8A9136AAu, crc32c(std::string(32, '\0')));
  UNSIGNED_LONGS_EQUAL(0x62A8AB43u, crc32c(std::string(32, '\xff')));
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up.push_back(static_cast<char>(i));
    down.push_back(static_cast<char>(31 - i));
  }
  UNSIGNED_LONGS_EQUAL(0x46DD794Eu, crc32c(up));
  UNSIGNED_LONGS_EQUAL(0x113FDB5Cu, crc32c(down));
  UNSIGNED_LONGS_EQUAL(0xE3069283u, crc32c_reference_extend(0, "123456789"));
}

TEST(Crc32c, FastPathMatchesReferenceAndExtendsAcrossSplits) {
  std::mt19937 rng(7);
  std::string data(4099, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 1000u, 4099u}) {
    for (size_t off : {0u, 1u, 3u}) {
      if (off + len > data.size()) continue;
      std::string_view s(data.data() + off, len);
      UNSIGNED_LONGS_EQUAL(crc32c_reference_extend(0, s), crc32c(s));
      size_t cut = len / 3;
      UNSIGNED_LONGS_EQUAL(crc32c(s), crc32c_extend(crc32c(s.substr(0, cut)), s.substr(cut)));
    }
  }
}
