// Encoding and checking of KV block headers (see block_format.h).
// Thread safety: pure functions.
#include "block_format.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <string>

#include "supernode/storage/crc32c.h"

namespace sn::storage::detail {
namespace {

void put_u16(char* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void put_u32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void put_u64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

uint64_t model_id_hash(std::string_view model_id) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : model_id) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

uint32_t block_crc(std::span<const char, kBlockHeaderBytes> header, std::string_view payload) {
  return crc32c_extend(crc32c(std::string_view(header.data(), kBlockCrcOffset)), payload);
}

namespace {

std::array<unsigned char, kBlockMacBytes> block_mac(const char* header, std::string_view payload,
                                                    std::string_view mac_key) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> full{};
  size_t len = 0;
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  if (ctx != nullptr &&
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(mac_key.data()), mac_key.size(), params) == 1) {
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(header), kBlockMacOffset);
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
    EVP_MAC_final(ctx, full.data(), &len, full.size());
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  std::array<unsigned char, kBlockMacBytes> out{};
  // A failed MAC computation leaves all zeros, which never verifies (block_mac_ok).
  if (len >= kBlockMacBytes) std::memcpy(out.data(), full.data(), kBlockMacBytes);
  return out;
}

}  // namespace

bool block_mac_ok(std::span<const char, kBlockHeaderBytes> header, std::string_view payload, std::string_view mac_key) {
  const std::array<unsigned char, kBlockMacBytes> want = block_mac(header.data(), payload, mac_key);
  const std::array<unsigned char, kBlockMacBytes> zero{};
  if (CRYPTO_memcmp(want.data(), zero.data(), kBlockMacBytes) == 0) return false;
  return CRYPTO_memcmp(want.data(), header.data() + kBlockMacOffset, kBlockMacBytes) == 0;
}

void encode_block_header(uint64_t model_hash, const BlockKey& key, std::string_view payload, std::string_view mac_key,
                         std::span<char, kBlockHeaderBytes> out) {
  char* p = out.data();
  std::memset(p, 0, kBlockHeaderBytes);
  put_u32(p + 0, kBlockMagic);
  put_u16(p + 4, kBlockFormatVersion);
  put_u16(p + 6, static_cast<uint16_t>(kBlockHeaderBytes));
  put_u64(p + 8, model_hash);
  put_u64(p + 16, key.hi);
  put_u64(p + 24, key.lo);
  put_u64(p + 32, payload.size());
  put_u32(p + kBlockCrcOffset, block_crc(out, payload));
  if (!mac_key.empty()) {
    const std::array<unsigned char, kBlockMacBytes> m = block_mac(p, payload, mac_key);
    std::memcpy(p + kBlockMacOffset, m.data(), kBlockMacBytes);
  }
  put_u32(p + kHeaderCrcOffset, crc32c(std::string_view(p, kHeaderCrcOffset)));
}

Result<BlockHeader> decode_block_header(std::span<const char, kBlockHeaderBytes> in) {
  const char* p = in.data();
  auto crc = static_cast<uint32_t>(get_le(p + kHeaderCrcOffset, 4));
  if (crc != crc32c(std::string_view(p, kHeaderCrcOffset))) return Status::corruption("header checksum mismatch");
  if (get_le(p, 4) != kBlockMagic) return Status::corruption("not a KV block (bad magic)");
  uint64_t version = get_le(p + 4, 2);
  if (version != kBlockFormatVersion) {
    return Status::corruption("unknown block format version " + std::to_string(version));
  }
  if (get_le(p + 6, 2) != kBlockHeaderBytes) return Status::corruption("unexpected header length");
  BlockHeader h;
  h.model_hash = get_le(p + 8, 8);
  h.key.hi = get_le(p + 16, 8);
  h.key.lo = get_le(p + 24, 8);
  h.payload_bytes = get_le(p + 32, 8);
  h.block_crc = static_cast<uint32_t>(get_le(p + kBlockCrcOffset, 4));
  std::memcpy(h.mac.data(), p + kBlockMacOffset, kBlockMacBytes);
  return h;
}

}  // namespace sn::storage::detail
