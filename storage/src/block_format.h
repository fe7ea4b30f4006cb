// The on-disk layout of one KV block file (documented in disk_block_store.h): encoding and
// checking the 64-byte header. Private to the storage room; used by disk_block_store.cpp.
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "supernode/base/status.h"
#include "supernode/storage/disk_block_store.h"

namespace sn::storage::detail {

inline constexpr uint32_t kBlockMagic = 0x564B4E53u;  // bytes "SNKV" read little-endian
inline constexpr uint16_t kBlockFormatVersion = 2;  // 2: bytes 44..60 hold the block's MAC
inline constexpr size_t kBlockCrcOffset = 40;    // block CRC covers bytes [0, 40) + payload
inline constexpr size_t kBlockMacOffset = 44;    // MAC covers bytes [0, 44) + payload
inline constexpr size_t kBlockMacBytes = 16;     // HMAC-SHA-256, truncated
inline constexpr size_t kHeaderCrcOffset = 60;   // header CRC covers bytes [0, 60)
static_assert(kBlockHeaderBytes == 64);

struct BlockHeader {
  uint64_t model_hash = 0;
  BlockKey key;
  uint64_t payload_bytes = 0;
  uint32_t block_crc = 0;
  std::array<unsigned char, kBlockMacBytes> mac{};  // zero when written without a key
};

// FNV-1a 64 of the model id: an identity tag, not a defence against crafted collisions
// (the key itself already commits to the model through the hash chain's root).
[[nodiscard]] uint64_t model_id_hash(std::string_view model_id);

// Writes the header, both CRCs and (with a non-empty `mac_key`) the MAC included, into
// `out`. `payload` is what follows it.
void encode_block_header(uint64_t model_hash, const BlockKey& key, std::string_view payload, std::string_view mac_key,
                         std::span<char, kBlockHeaderBytes> out);

// Whether the header's MAC is the one `mac_key` gives for this header and payload
// (constant-time compare). REQUIRES: a non-empty key.
[[nodiscard]] bool block_mac_ok(std::span<const char, kBlockHeaderBytes> header, std::string_view payload,
                                std::string_view mac_key);

// Parses and checks the header's own CRC, magic, version and length field; corruption
// (with what is wrong) otherwise. Does not look at the payload.
[[nodiscard]] Result<BlockHeader> decode_block_header(std::span<const char, kBlockHeaderBytes> in);

// The CRC the header's block_crc must equal for this header and payload.
[[nodiscard]] uint32_t block_crc(std::span<const char, kBlockHeaderBytes> header, std::string_view payload);

}  // namespace sn::storage::detail
