// Chained prefix-cache keys for KV blocks. A full block of `block_size` tokens is known by
// the hash of its parent block's key, its token ids and the request's extra keys; the root
// of every chain is derived from the model identity and the tenant's cache salt. Called by
// the scheduler as a request's tokens become known; the KV block pool indexes full blocks
// by these keys, and the disk tier (later) files blocks under them.
//
// Why this shape: each key commits to the whole prefix (through the parent), so equal keys
// mean equal prefixes. Every field is length-framed and each kind of input has its own
// domain tag ('R' for roots, 'B' for blocks), so no (model, salt) pair and no token sequence
// can be re-read as another: ("ab", "c") and ("a", "bc") give different roots, and a tenant
// shares a block with another only when both use the same salt (an explicit opt-in).
//
// The hash is SHA-256 (written here, FIPS 180-4) truncated to 128 bits. Truncation keeps
// collision resistance at 2^64 work: by the birthday bound, even 10^12 distinct blocks
// collide with probability about 10^24 / 2^129 ≈ 1.5e-15. A cryptographic hash rather than
// a fast non-cryptographic one, because keys cross tenants and outlive the process (the
// disk tier): a tenant must not be able to craft a collision with another tenant's block.
// Cost: about a microsecond per 16-token block, noise beside computing the block's KV.
//
// Thread safety: pure functions and values; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace sn::scheduler {

// A 128-bit block key. Plain value, compared bitwise.
struct BlockHash {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const BlockHash&, const BlockHash&) = default;
  // Lowercase hex, 32 digits (for logs and test messages).
  [[nodiscard]] std::string to_string() const;
};

// The root of every chain for `model_id` (the model's identity: name plus content hash)
// and `cache_salt` (set by the server from the tenant, never by the client).
[[nodiscard]] BlockHash block_hash_root(std::string_view model_id, std::string_view cache_salt);

// The key of a full block whose parent key is `parent` (a root for the first block).
// `extra_keys` carries anything else the KV depends on (a LoRA adapter id, later images);
// empty for plain text.
[[nodiscard]] BlockHash block_hash_next(const BlockHash& parent, std::span<const int32_t> tokens,
                                        std::span<const uint64_t> extra_keys = {});

// SHA-256 of `data` (exposed for tests against the FIPS 180-4 vectors).
void sha256(std::span<const uint8_t> data, uint8_t out[32]);

}  // namespace sn::scheduler

template <>
struct std::hash<sn::scheduler::BlockHash> {
  // The key is already uniformly distributed; any 64 bits of it are a good bucket hash.
  size_t operator()(const sn::scheduler::BlockHash& h) const noexcept { return static_cast<size_t>(h.lo); }
};
