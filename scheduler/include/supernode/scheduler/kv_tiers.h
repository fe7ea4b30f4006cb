// The lower tiers of the KV cache: tier 2 in host RAM and tier 3 on local disks. Tier 1 is
// the KvBlockPool (device memory; RAM for the CPU backend). A cached tier-1 block that the
// pool evicts is demoted here instead of being dropped; a prefix lookup that runs past the
// tier-1 hits continues here, and what it finds is promoted back into fresh tier-1 blocks.
//
//   tier 1 --evict--> demote(): copied into a host slot now (the tier-1 block is about to be
//                     reused), then queued for disk (write-behind, on the I/O thread)
//   tier 2 --evict--> dropped: its disk copy, written behind, is usually there already
//   tier 3 --fetch--> fetch(): the I/O thread reads blocks into host slots, then reports the
//                     ticket; the scheduler then promotes them from tier 2 like any tier-2 hit
//   tier 2 --promote-> promote(): copied into a tier-1 block now
//
// So tier 3 holds (nearly) everything tier 2 ever held: eviction from host RAM never waits
// for a disk, and what was demoted survives a restart (the disk index is rebuilt at open).
// Disk blocks are checksummed, carry the model identity and their key, and are written
// atomically (storage/disk_block_store.h); a corrupt or foreign block is dropped at open or
// at read, and its prefix is recomputed. A full disk pauses writes; serving goes on.
//
// Optionally blocks are kept in tiers 2-3 as int8 with one float scale per head_dim values
// (`int8`), halving host RAM and disk per block; tier 1 stays F16. The payload format enters
// the disk store's model identity, so F16 and int8 blocks never mix.
//
// Block contents move through a KvBlockIo that the engine implements over its KV storage: the
// scheduler and this class never see the layout, only bytes per block.
//
//   KvTiersConfig c{.host_bytes = 8ull << 30, .disk_dirs = {"/var/lib/supernode/kv"},
//                   .disk_bytes_per_dir = 256ull << 30, .model_id = model_identity};
//   Result<std::unique_ptr<KvTiers>> tiers = KvTiers::open(storage::posix_env(), c, block_io);
//   scheduler.attach_tiers(tiers->get());   // the scheduler calls the rest
//
// Thread safety: every public method is called from one thread (the engine thread, which
// also drives the scheduler and owns the KvBlockIo); an internal I/O thread does the disk
// work, sharing state with it under one mutex.
#pragma once

#include <atomic>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "supernode/base/mutex.h"
#include "supernode/base/status.h"
#include "supernode/base/thread_annotations.h"
#include "supernode/scheduler/block_hash.h"
#include "supernode/storage/disk_block_store.h"
#include "supernode/storage/env.h"

namespace sn::scheduler {

// Access to tier-1 block contents; implemented by the engine over its KV storage. Called on
// the engine thread only, between forward passes.
class KvBlockIo {
 public:
  virtual ~KvBlockIo() = default;
  // Bytes of one block's KV: F16 values, a whole number of head_dim() groups.
  [[nodiscard]] virtual size_t block_bytes() const = 0;
  // Values per row of one head (the group that shares one scale in int8 blocks).
  [[nodiscard]] virtual int32_t head_dim() const = 0;
  // REQUIRES: out/in hold block_bytes().
  virtual void read_block(int32_t block, std::span<std::byte> out) const = 0;
  virtual void write_block(int32_t block, std::span<const std::byte> in) = 0;
};

// The int8 block encoding of tiers 2-3: for each group of `head_dim` F16 values, one float
// scale (max |x| / 127) up front, then every value rounded to the nearest multiple of it.
// Exposed for tests and for measuring its accuracy (`supernode perplexity --kv-int8`).
// REQUIRES: f16.size() is a multiple of 2 * head_dim; out/in hold kv_int8_bytes() bytes.
[[nodiscard]] size_t kv_int8_bytes(size_t f16_bytes, int32_t head_dim);
void kv_int8_encode(std::span<const std::byte> f16, int32_t head_dim, std::span<std::byte> out);
void kv_int8_decode(std::span<const std::byte> in, int32_t head_dim, std::span<std::byte> f16);

struct KvTiersConfig {
  uint64_t host_bytes = 0;              // tier 2 capacity; at least a few blocks when disks are set
  std::vector<std::string> disk_dirs;   // tier 3, one directory per disk; empty: no tier 3
  uint64_t disk_bytes_per_dir = 0;      // cap per directory (headers included); REQUIRES: > 0 with dirs
  uint64_t disk_min_free_bytes = 0;     // left free on each disk
  bool int8 = false;                    // keep tiers 2-3 blocks as int8 with per-row scales
  std::string model_id;                 // the model's identity: disk blocks of another are foreign
  std::string disk_mac_key;             // authenticates disk blocks (DiskBlockStoreOptions::mac_key)
};

// Counters since open; blocks_* and bytes_* of the disk are current values.
struct KvTierHostStats {
  int64_t blocks_total = 0;  // slots
  int64_t blocks_used = 0;
  int64_t hits = 0;          // blocks found by a lookup
  int64_t misses = 0;        // lookups that stopped here (at most one per lookup)
  int64_t promotions = 0;    // copied up into tier 1
  int64_t demotions = 0;     // taken in from tier 1
  int64_t evictions = 0;     // slots reused for other blocks
  int64_t bytes_in = 0;      // into host RAM (from tier 1 or the disks)
  int64_t bytes_out = 0;     // up into tier 1
};
struct KvTierDiskStats {
  int64_t blocks = 0;
  int64_t bytes = 0;              // on disk, headers included
  int64_t capacity_bytes = 0;     // sum of the directories' current caps
  int64_t hits = 0;               // blocks found by a lookup (not in host RAM)
  int64_t misses = 0;
  int64_t promotions = 0;         // read up into host RAM
  int64_t demotions = 0;          // written (write-behind of demoted blocks)
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;
  int64_t corrupt_dropped = 0;    // failed a check (at open or read): deleted, recomputed
  int64_t writes_failed = 0;      // I/O error, full disk or paused
  int64_t writes_skipped = 0;     // evicted from host RAM before its turn to be written
  int64_t evictions = 0;
  int64_t paused_dirs = 0;        // directories with writes paused after a full disk
  std::string last_dropped;       // "path: why" of the latest corrupt block, for logs
};
struct KvTierStats {
  KvTierHostStats host;
  KvTierDiskStats disk;
  bool has_disk = false;
};

// Leading runs of a key chain found by KvTiers::probe().
struct KvTierProbe {
  int32_t host = 0;  // keys [0, host) are in host RAM
  int32_t any = 0;   // keys [0, any) are in host RAM or on disk (any >= host)
};

namespace detail {
// Unmaps the host-RAM arena of KvTiers.
struct KvArenaFree {
  size_t bytes = 0;
  void operator()(std::byte* p) const;
};
}  // namespace detail

class KvTiers {
 public:
  // Opens the tiers: allocates nothing up front for host RAM (slots are touched as used),
  // opens the disk store (rebuilding its index from the directories, dropping corrupt and
  // foreign blocks, reporting progress per file scanned) and starts the I/O thread. `io`
  // and `env` must outlive the tiers. Errors: invalid_argument (config), or what the disk
  // store's open returns (a directory that cannot be created or listed).
  [[nodiscard]] static Result<std::unique_ptr<KvTiers>> open(storage::Env& env, const KvTiersConfig& config,
                                                           KvBlockIo& io,
                                                           const storage::DiskScanProgress& progress = {});
  // Finishes queued disk writes (flush()), then stops the I/O thread.
  ~KvTiers();
  KvTiers(const KvTiers&) = delete;
  KvTiers& operator=(const KvTiers&) = delete;

  // Tier-1 block `block`, cached under `key`, is being evicted: copies it into host RAM (or
  // just marks it recently used when already there) and queues it for disk.
  void demote(int32_t block, const BlockHash& key);
  // Like demote, for a tier-1 block that stays cached there (write-through); does nothing
  // when host RAM or the disk already holds `key`. Returns whether it copied.
  bool copy_down(int32_t block, const BlockHash& key);

  // How far the chain `keys` is present below tier 1: a leading run in host RAM, and the
  // leading run in host RAM or on disk. Marks the host blocks recently used and counts hits
  // and misses per tier.
  [[nodiscard]] KvTierProbe probe(std::span<const BlockHash> keys);

  // Copies the host block `key` into tier-1 block `block`. false when it is not in host RAM
  // (evicted since probe()); the caller then computes that block instead.
  [[nodiscard]] bool promote(const BlockHash& key, int32_t block);

  // Asks the I/O thread to read `keys` (a chain) from disk into host RAM, in order, stopping
  // at the first that is missing, corrupt, or finds no free slot. take_completed() returns
  // `ticket` when it is done (whatever it found).
  void fetch(uint64_t ticket, std::vector<BlockHash> keys);
  // Tickets of fetches finished since the last call.
  [[nodiscard]] std::vector<uint64_t> take_completed();
  // Waits up to `timeout_us` for a fetch to finish; true when one has (not yet taken).
  bool wait_completed(int64_t timeout_us);
  [[nodiscard]] int32_t fetches_in_flight() const;

  // Waits until every queued disk write has been done (or failed).
  void flush();
  // Empties host RAM after flush(): what was there is then only on disk. For benchmarks that
  // measure the disk tier, and for tests.
  void drop_host();

  [[nodiscard]] KvTierStats stats() const;
  [[nodiscard]] bool has_disk() const { return store_ != nullptr; }

  // Warm-up: while it has no disk work, the I/O thread maps the host-RAM arena in (page
  // tables and zero pages, contents untouched: safe beside slots in use), so the first
  // blocks read after a start do not pay a page fault per 4 KiB. The fraction done, and a
  // wait for it (progress is reported to `progress` every ~64 MiB).
  [[nodiscard]] double warmup_fraction() const;
  void wait_warm(const std::function<void(double)>& progress = {});
  [[nodiscard]] size_t slot_bytes() const { return slot_bytes_; }

 private:
  struct Slot {
    BlockHash key;
    bool used = false;           // holds `key`, in map_ and the LRU list
    bool reserved = false;       // taken by the I/O thread for a fetch, not yet filled
    bool write_pending = false;  // queued for disk
    bool busy = false;           // the I/O thread is reading or writing its bytes
    uint32_t gen = 0;            // bumped on every reuse: stale write jobs see the change
    int32_t prev = -1, next = -1;  // LRU links, head = most recently used
  };
  struct WriteJob {
    int32_t slot;
    uint32_t gen;
    BlockHash key;
  };
  struct FetchJob {
    uint64_t ticket;
    std::vector<BlockHash> keys;
  };

  KvTiers(const KvTiersConfig& config, KvBlockIo& io);

  [[nodiscard]] std::span<std::byte> slot_data(int32_t slot) const {
    return {arena_.get() + static_cast<size_t>(slot) * slot_bytes_, slot_bytes_};
  }
  // A free slot, evicting the least recently used idle one if need be; -1 when every slot is busy.
  int32_t take_slot() SN_REQUIRES(mu_);
  void lru_push_front(int32_t slot) SN_REQUIRES(mu_);
  void lru_unlink(int32_t slot) SN_REQUIRES(mu_);

  // demote() under the lock; true when the I/O thread got a write to do.
  bool demote_locked(int32_t block, const BlockHash& key) SN_EXCLUDES(mu_);
  void io_main() SN_EXCLUDES(mu_);
  void run_write(const WriteJob& job) SN_EXCLUDES(mu_);
  void run_fetch(const FetchJob& job) SN_EXCLUDES(mu_);
  void on_disk_drop(const storage::BlockKey& key) SN_EXCLUDES(mu_);
  void snapshot_disk_stats() SN_REQUIRES(mu_);

  KvBlockIo& io_;
  const KvTiersConfig config_;
  const size_t block_bytes_;  // tier-1 block (F16)
  size_t slot_bytes_;         // tier-2/3 block (F16 or int8 + scales)
  int32_t num_slots_ = 0;
  // Host RAM for the slots: anonymous memory in 2 MiB huge pages where the kernel allows,
  // touched only as slots are used (a 4 KiB first-touch fault per page made the first disk
  // reads after a restart ten times slower than later ones).
  std::unique_ptr<std::byte[], detail::KvArenaFree> arena_;
  std::vector<std::byte> scratch_;  // engine thread: one F16 block for int8 encode/decode
  std::unique_ptr<storage::DiskBlockStore> store_;  // touched by the I/O thread only (after open)

  mutable Mutex mu_;
  CondVar io_cv_;    // work for the I/O thread, or stop
  CondVar done_cv_;  // a fetch finished, or the write queue drained
  std::vector<Slot> slots_ SN_GUARDED_BY(mu_);
  std::vector<int32_t> free_slots_ SN_GUARDED_BY(mu_);
  int32_t lru_head_ SN_GUARDED_BY(mu_) = -1;
  int32_t lru_tail_ SN_GUARDED_BY(mu_) = -1;
  std::unordered_map<BlockHash, int32_t> map_ SN_GUARDED_BY(mu_);
  std::unordered_set<BlockHash> on_disk_ SN_GUARDED_BY(mu_);
  std::deque<WriteJob> writes_ SN_GUARDED_BY(mu_);
  std::deque<FetchJob> fetches_ SN_GUARDED_BY(mu_);
  bool io_active_ SN_GUARDED_BY(mu_) = false;  // the I/O thread is running a job
  std::vector<uint64_t> completed_ SN_GUARDED_BY(mu_);
  int32_t fetches_in_flight_ SN_GUARDED_BY(mu_) = 0;
  bool stop_ SN_GUARDED_BY(mu_) = false;
  KvTierStats stats_ SN_GUARDED_BY(mu_);
  size_t arena_bytes_ = 0;
  std::atomic<size_t> populated_bytes_{0};  // written by the I/O thread
  std::thread io_thread_;
};

}  // namespace sn::scheduler
