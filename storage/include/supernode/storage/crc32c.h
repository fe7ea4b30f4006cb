// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum every on-disk KV block
// carries. Called by DiskBlockStore on each write and each read; exposed for tests.
// crc32c() uses the SSE4.2 crc32 instruction (part of x86-64-v3, our oldest CPU) when the
// build targets it, else crc32c_reference(); both give the same value for every input.
//
//   uint32_t c = crc32c(header);
//   c = crc32c_extend(c, payload);  // == crc32c(header + payload)
//
// Thread safety: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace sn::storage {

// The CRC-32C of `data` appended to data whose CRC-32C is `crc` (0 for nothing before).
[[nodiscard]] uint32_t crc32c_extend(uint32_t crc, std::string_view data);
[[nodiscard]] inline uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data); }

// The byte-at-a-time table version, the reference the fast path is tested against.
[[nodiscard]] uint32_t crc32c_reference_extend(uint32_t crc, std::string_view data);

}  // namespace sn::storage
