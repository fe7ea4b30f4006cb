// DiskBlockStore: tier 3 of the KV cache, fixed-content blocks filed on local disks under
// their 128-bit prefix key, surviving restarts. The scheduler's tier mover (later, from one
// I/O thread) demotes cold blocks into it with put() and promotes hits with get(); the
// daemon opens it at start over the configured directories.
//
//   DiskBlockStoreOptions o{.dirs = {"/srv/kv0", "/srv/kv1"}, .capacity_bytes = 64ull << 30,
//                           .block_bytes = kv_block_bytes, .model_id = model.identity()};
//   Result<std::unique_ptr<DiskBlockStore>> store = DiskBlockStore::open(posix_env(), o);
//   if (!store.ok()) return store.status();
//   (void)(*store)->put(key, bytes);                 // best effort: a cache may decline
//   Result<std::optional<std::string>> hit = (*store)->get(key);
//   if (hit.ok() && *hit) load(**hit); else recompute();
//
// On disk: one file per block, `<dir>/<32 hex digits of the key>.blk`, a 64-byte header and
// the payload (layout in src/block_format.h):
//   0 magic "SNKV" | 4 format version (u16, 2) | 6 header bytes (u16) | 8 model id hash (u64,
//   FNV-1a of model_id) | 16 key hi | 24 key lo | 32 payload bytes (u64) | 40 CRC-32C of
//   bytes 0..40 then the payload | 44 HMAC-SHA-256 of bytes 0..44 then the payload under
//   the store's mac_key, first 16 bytes (zero without a key) | 60 CRC-32C of bytes 0..60.
//   Little-endian. Files are created mode 0600.
// Writes are atomic: the block goes to `<key>.tmp`, is fsynced, renamed over `<key>.blk`,
// and the directory is fsynced, so after a crash a block is absent or whole, never torn,
// and a put that returned ok survives. Open removes leftover .tmp files.
//
// Trust: open checks each header (its CRC, magic, version, model id hash, the key against
// the file name, the length against the file size and block_bytes); get checks the header
// again, the CRC over header and payload and, with a mac_key, the MAC. A block failing any
// check (blocks of format 1, from before the MAC, among them) is deleted, counted
// in corrupt_dropped and reported as a miss; it is never returned.
//
// Placement and capacity: a new block goes to dirs[key.lo % dirs.size()], or the next
// directory that accepts writes. Each directory has a byte cap (header included), the
// smaller of capacity_bytes and what its disk has free at open, minus min_free_bytes;
// putting into a full directory evicts its least recently used blocks (put or get order,
// kept in memory; blocks found at open start oldest, in scan order). A write that meets a
// full disk (ENOSPC) shrinks that directory's cap to what it holds and pauses writes to it
// for free_space_probe_interval_us, after which the cap is re-read from the free space;
// reads go on throughout.
//
// Thread safety: none inside. One owner (the tier's I/O thread) calls every method, or the
// caller serializes; const methods may run concurrently with each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/storage/env.h"

namespace sn::storage {

// A block's 128-bit key (the scheduler's BlockHash, as {hi, lo}). Plain value.
struct BlockKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const BlockKey&, const BlockKey&) = default;
  // 32 lowercase hex digits, hi first: the block's file name stem.
  [[nodiscard]] std::string to_hex() const;
  // The inverse of to_hex(); nullopt unless `hex` is exactly 32 lowercase hex digits.
  [[nodiscard]] static std::optional<BlockKey> from_hex(std::string_view hex);
};

struct BlockKeyHasher {
  // Keys are uniformly distributed hashes already.
  size_t operator()(const BlockKey& k) const noexcept { return static_cast<size_t>(k.lo ^ k.hi); }
};

// The size of the header in front of every payload on disk.
inline constexpr size_t kBlockHeaderBytes = 64;

struct DiskBlockStoreOptions {
  std::vector<std::string> dirs;  // one per disk; created when missing. REQUIRES: non-empty.
  uint64_t capacity_bytes = 0;    // cap per directory, headers included. REQUIRES: > 0.
  uint64_t block_bytes = 0;       // every payload's size; 0 accepts any size
  std::string model_id;           // blocks written under another model id are dropped
  // A secret key: each block then carries an HMAC-SHA-256 (truncated to 16 bytes) of its
  // header and payload, and get() returns only blocks whose MAC verifies under this key,
  // so a block planted or altered by someone who can write the directory but lacks the key
  // is dropped, not served (a CRC alone is no defence against a deliberate edit). Empty:
  // CRC only.
  std::string mac_key;
  uint64_t min_free_bytes = 0;    // left free on each disk for others
  uint64_t free_space_probe_interval_us = 30'000'000;
  // Called (on the caller's thread, inside the call that decided it) whenever a block leaves
  // the index: evicted, found corrupt, erased, or replaced by a failed put. Lets an owner
  // keep a copy of the key set that other threads may read. Must not call back into the store.
  std::function<void(const BlockKey&)> on_drop;
};

struct DiskBlockStoreDirStats {
  std::string path;
  uint64_t blocks = 0;
  uint64_t bytes = 0;           // on disk, headers included
  uint64_t capacity_bytes = 0;  // the current cap (shrinks on a full disk)
  bool paused = false;          // writes paused after ENOSPC
};

struct DiskBlockStoreStats {
  uint64_t blocks = 0;
  uint64_t bytes = 0;  // on disk, headers included
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t corrupt_dropped = 0;  // failed a check, at open or at get; deleted
  uint64_t writes = 0;           // puts that stored a block
  uint64_t writes_failed = 0;    // puts that stored nothing (I/O error, full disk, no room)
  uint64_t evictions = 0;
  uint64_t temp_files_removed = 0;  // leftovers of interrupted puts, removed at open
  std::string last_dropped;         // "path: why" of the latest corrupt block dropped, for logs
  std::vector<DiskBlockStoreDirStats> dirs;
};

// Progress of the scan at open: files looked at so far, and in all.
using DiskScanProgress = std::function<void(uint64_t scanned, uint64_t total)>;

class DiskBlockStore {
 public:
  // Creates missing directories, removes leftover temp files, drops invalid blocks and
  // indexes the rest (headers only: payloads are verified at get). Calls `progress` after
  // each file. Fails only when a directory cannot be created or listed. `env` must outlive
  // the store. REQUIRES: options as documented on DiskBlockStoreOptions.
  [[nodiscard]] static Result<std::unique_ptr<DiskBlockStore>> open(Env& env, DiskBlockStoreOptions options,
                                                                   const DiskScanProgress& progress = {});

  DiskBlockStore(const DiskBlockStore&) = delete;
  DiskBlockStore& operator=(const DiskBlockStore&) = delete;

  // Stores `payload` under `key`, replacing a block already there (atomically: a reader
  // or a crash sees the old block or the new one). Every failure is non-fatal: the store
  // stays usable, nothing partial is visible, and the caller may ignore it (a cache that
  // declines a block). Returns invalid_argument when the size is not block_bytes or the
  // block is larger than every directory's cap; resource_exhausted when the disks are full
  // or paused; io_error when a write, fsync or rename failed. On a failed replace the old
  // block may be gone too.
  [[nodiscard]] Status put(const BlockKey& key, std::string_view payload);

  // The verified payload under `key`, or nullopt (a miss: absent, or found corrupt and
  // dropped). An error (the file could not be read) also leaves the block in place; treat
  // it as a miss. Counts a hit or a miss and marks the block recently used.
  [[nodiscard]] Result<std::optional<std::string>> get(const BlockKey& key);
  // As get(), into `out`; returns the payload's size. On a miss or an error the contents
  // of `out` are unspecified. invalid_argument when `out` is smaller than the payload.
  [[nodiscard]] Result<std::optional<uint64_t>> get_into(const BlockKey& key, std::span<char> out);

  // Whether `key` is indexed (its payload is verified only by get). Not a use: no LRU move.
  [[nodiscard]] bool contains(const BlockKey& key) const { return index_.count(key) != 0; }
  // The payload size of an indexed block.
  [[nodiscard]] std::optional<uint64_t> payload_bytes(const BlockKey& key) const;
  // Removes `key`'s block; ok when absent. On an error the index forgets the block anyway
  // (the file may come back at the next open, still checked like any other).
  [[nodiscard]] Status erase(const BlockKey& key);

  [[nodiscard]] uint64_t count() const { return index_.size(); }
  // Every indexed key, in no particular order.
  [[nodiscard]] std::vector<BlockKey> keys() const;
  // Bytes on disk, headers included.
  [[nodiscard]] uint64_t size_bytes() const;
  [[nodiscard]] DiskBlockStoreStats stats() const;

 private:
  struct Dir {
    std::string path;
    uint64_t used = 0;  // bytes of indexed blocks, headers included
    uint64_t cap = 0;
    uint64_t blocks = 0;
    std::list<BlockKey> lru;  // front: most recently used
    uint64_t paused_until_us = 0;
    uint64_t next_probe_us = 0;
  };
  struct Entry {
    uint32_t dir = 0;
    uint64_t payload_bytes = 0;
    std::list<BlockKey>::iterator lru;
  };
  using Index = std::unordered_map<BlockKey, Entry, BlockKeyHasher>;

  DiskBlockStore(Env& env, DiskBlockStoreOptions options);

  // Indexes directory `d`'s block files, drops bad ones, removes temp files.
  void scan_dir(uint32_t d, const std::vector<std::string>& names, uint64_t total, uint64_t& scanned,
                const DiskScanProgress& progress);
  [[nodiscard]] std::string block_path(uint32_t d, const BlockKey& key) const;
  [[nodiscard]] std::string temp_path(uint32_t d, const BlockKey& key) const;
  // Re-reads the directory's cap from its free space when due; evicts down to it.
  void refresh_cap(uint32_t d, bool force);
  // Whether directory `d` takes a new block of `bytes` now (evicting if need be).
  [[nodiscard]] bool accepts(uint32_t d, uint64_t bytes);
  // Evicts LRU blocks of `d`, never `keep`, until `incoming` more bytes fit under its cap.
  void make_room(uint32_t d, uint64_t incoming, const BlockKey* keep);
  void insert_entry(const BlockKey& key, uint32_t d, uint64_t payload_bytes, bool most_recent);
  void drop_entry(Index::iterator it);
  // Reads and verifies the block into `out` (sized to its payload). false: a miss (the
  // block was corrupt and is dropped, or its file vanished); counted here.
  Result<bool> read_verified(Index::iterator it, std::span<char> out);
  // Deletes a block file that failed a check and counts it.
  void drop_corrupt(const std::string& path, std::string_view why);
  // Checks the header of a block file found at open; its payload size, or corruption.
  Result<uint64_t> check_at_open(const std::string& path, const BlockKey& key);
  // Writes `<key>.tmp`, fsyncs, renames to `<key>.blk`, fsyncs the directory. On failure
  // removes what it wrote; `renamed` says whether a block file under the key was replaced.
  Status write_block_file(uint32_t d, const BlockKey& key, std::string_view payload, bool& renamed);

  Env& env_;
  DiskBlockStoreOptions options_;
  uint64_t model_hash_ = 0;
  std::vector<Dir> dirs_;
  Index index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t corrupt_dropped_ = 0;
  uint64_t writes_ = 0;
  uint64_t writes_failed_ = 0;
  uint64_t evictions_ = 0;
  uint64_t temp_files_removed_ = 0;
  std::string last_dropped_;
};

}  // namespace sn::storage
