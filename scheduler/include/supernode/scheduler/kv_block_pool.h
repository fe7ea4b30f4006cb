// The KV block pool: a fixed number of blocks of `block_size` tokens each, ref-counted, with
// a free queue in eviction order and a key -> block map of full blocks (the prefix cache).
// Shaped after vLLM's block_pool.py; the free queue is split by an eviction policy the way
// TensorRT-LLM's evictionPolicy.h keeps free queues per priority. The pool knows nothing of
// requests: the KvManager (kv_manager.h) is its only caller, on the scheduler's thread.
//
// A block is in exactly one of two states: used (ref count > 0, owned by one or more
// requests) or free (ref count 0, in a free queue). A free block may still be cached: it
// keeps its key and content until allocate() reuses it, and a prefix hit (touch()) takes it
// out of the free queue again. Free queues, evicted first to last:
//   empty      blocks holding nothing reusable (never filled, or a duplicate of a cached one);
//   probation  cached blocks not reused since they were filled, least recently freed first;
//   protected  cached blocks reused at least once (SegmentedLru only), least recently first.
// Scan resistance: a one-off long prompt fills probation blocks only, so it cannot flush a hot
// shared prefix that sits in protected. Protected is capped at a fraction of the pool; its
// overflow is demoted to the tail of probation, so a formerly hot prefix can still age out.
//
// Thread safety: none; one thread (the scheduler's) drives a pool. Const methods are safe
// concurrently with each other.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/scheduler/block_hash.h"

namespace sn::scheduler {

// One LRU queue of free cached blocks (vLLM's policy): simple, but not scan resistant.
struct LruEviction {};
// Two queues, probation and protected (SLRU); a block is promoted when a prefix hit reuses
// it. `protected_fraction` of the pool at most is protected.
struct SegmentedLruEviction {
  double protected_fraction = 0.8;
};
using EvictionPolicy = std::variant<SegmentedLruEviction, LruEviction>;

struct KvPoolConfig {
  int32_t num_blocks = 0;   // REQUIRES: > 0
  int32_t block_size = 16;  // tokens per block; REQUIRES: > 0
  EvictionPolicy eviction = SegmentedLruEviction{};
};

// Counters since construction; blocks_* are current values.
struct KvPoolStats {
  int32_t blocks_total = 0;
  int32_t blocks_used = 0;    // ref count > 0
  int32_t blocks_free = 0;    // ref count 0 (cached or not)
  int32_t blocks_cached = 0;  // holding a key (used or free)
  int64_t hits = 0;           // cached blocks reused by a prefix hit
  int64_t misses = 0;         // full blocks computed and offered to the cache
  int64_t evictions = 0;      // cached blocks whose content allocate() discarded
  int64_t promotions = 0;     // probation -> protected
};

class KvBlockPool {
 public:
  explicit KvBlockPool(const KvPoolConfig& config);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  [[nodiscard]] int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  [[nodiscard]] int32_t block_size() const { return block_size_; }
  [[nodiscard]] int32_t num_free() const { return num_free_; }
  [[nodiscard]] int32_t ref_count(int32_t block) const;
  // The key of `block` if it is cached.
  [[nodiscard]] std::optional<BlockHash> block_key(int32_t block) const;
  [[nodiscard]] KvPoolStats stats() const;

  // `n` blocks with ref count 1 and no key, taken from the front of the free queues (which
  // evicts cached content); nullopt, with nothing changed, when fewer than `n` are free.
  [[nodiscard]] std::optional<std::vector<int32_t>> allocate(int32_t n);

  // The cached block with key `key`, if any. Changes nothing (counters included).
  [[nodiscard]] std::optional<int32_t> lookup(const BlockHash& key) const;

  // Takes one more reference on each block (a prefix hit): free ones leave the free queue.
  // Counts a hit per block. REQUIRES: every block is cached.
  void touch(std::span<const int32_t> blocks);

  // Drops one reference from each block, in order; a block reaching zero goes to the tail of
  // its free queue, so callers release a request's blocks tail first (its last block is then
  // evicted before its first). REQUIRES: every ref count > 0.
  void release(std::span<const int32_t> blocks);

  // Marks a used, full block as holding `key`. Returns false (and leaves the block uncached)
  // when another block already holds `key`: the first stays the canonical copy. Counts a miss.
  // REQUIRES: ref_count(block) > 0 and the block holds no key yet.
  bool cache(int32_t block, const BlockHash& key);

  // Called by allocate() for each cached block whose content it is about to discard, before
  // the block is handed out: the lower tiers (kv_tiers.h) copy it down there. Without a
  // hook the content is dropped.
  using EvictHook = std::function<void(int32_t block, const BlockHash& key)>;
  void set_evict_hook(EvictHook hook) { evict_hook_ = std::move(hook); }

  // Evicts every free cached block now (through the hook), leaving used blocks alone; returns
  // how many. For forcing demotion (benchmarks, tests, shutdown).
  int32_t evict_free_cached();

  // Cached blocks (used or free: a cached block's content is final) not yet handed out by
  // this call since they were cached, at most `max`; each is marked handed out. The lower
  // tiers copy them down while the engine idles (write-through), so that the disk tier holds
  // them even when the process dies without evicting anything.
  [[nodiscard]] std::vector<std::pair<int32_t, BlockHash>> take_uncopied_cached(int32_t max);

  // Verifies every internal invariant (queue membership vs ref counts, counts, the key map).
  // For tests and debug builds; O(num_blocks).
  [[nodiscard]] Status check_consistency() const;

 private:
  enum class Queue : uint8_t { kNone, kEmpty, kProbation, kProtected };
  struct Block {
    int32_t ref = 0;
    int32_t prev = -1;  // links within the free queue `queue`
    int32_t next = -1;
    Queue queue = Queue::kNone;
    bool reused = false;  // hit since it was cached: goes to protected when freed
    bool copied = false;  // handed out by take_uncopied_cached since it was cached
    std::optional<BlockHash> key;
  };
  struct List {
    int32_t head = -1;
    int32_t tail = -1;
    int32_t size = 0;
  };

  List& list(Queue q);
  const List& list(Queue q) const;
  void push_back(Queue q, int32_t b);
  void unlink(int32_t b);
  void rebalance_protected();

  int32_t block_size_;
  bool segmented_;
  int32_t protected_cap_;
  std::vector<Block> blocks_;
  List empty_, probation_, protected_;
  int32_t num_free_ = 0;
  std::unordered_map<BlockHash, int32_t> cached_;
  KvPoolStats stats_;
  EvictHook evict_hook_;
};

}  // namespace sn::scheduler
