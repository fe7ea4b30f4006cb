// The KV manager: which blocks each request holds. It turns "request R needs room for N more
// tokens" into block allocations from the KvBlockPool, finds a request's longest cached
// prefix, offers full blocks to the prefix cache as they are computed, and gives everything
// back when the request finishes, is cancelled or is preempted. Shaped after vLLM v1's
// KVCacheManager. The Scheduler is its only caller; it never touches device memory (block
// ids index the engine's KV storage, which the engine owns).
//
// Thread safety: none; driven by the scheduler's thread. Const methods are safe concurrently
// with each other.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/scheduler/block_hash.h"
#include "supernode/scheduler/kv_block_pool.h"

namespace sn::scheduler {

using RequestId = uint64_t;

// A request's block table at one moment: block i holds the KV of token positions
// [i * block_size, (i + 1) * block_size). A copy: later allocations do not change it.
class KvBlocks {
 public:
  [[nodiscard]] std::span<const int32_t> ids() const { return ids_; }
  [[nodiscard]] int32_t size() const { return static_cast<int32_t>(ids_.size()); }

 private:
  friend class KvManager;
  explicit KvBlocks(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  std::vector<int32_t> ids_;
};

// A cached prefix found by find_prefix(): these blocks hold the KV of the first
// `num_tokens` tokens (a whole number of blocks).
struct PrefixHit {
  std::vector<int32_t> blocks;
  int32_t num_tokens = 0;
};

class KvManager {
 public:
  explicit KvManager(const KvPoolConfig& config) : pool_(config) {}
  KvManager(const KvManager&) = delete;
  KvManager& operator=(const KvManager&) = delete;

  [[nodiscard]] const KvBlockPool& pool() const { return pool_; }
  [[nodiscard]] int32_t block_size() const { return pool_.block_size(); }
  // Blocks needed to hold `num_tokens` tokens.
  [[nodiscard]] int32_t blocks_for(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + block_size() - 1) / block_size());
  }

  // The longest run of cached full blocks that starts the chain `block_hashes` (the keys of
  // a request's full blocks, in order), for a request with `num_tokens` known tokens. Never
  // covers every known token: the last one is always left to compute, so the step that
  // computes it yields the logits to sample from (vLLM's get_computed_blocks).
  // Changes nothing; the hit is valid until the pool is next changed.
  [[nodiscard]] PrefixHit find_prefix(std::span<const BlockHash> block_hashes, int64_t num_tokens) const;

  // Makes room for tokens [num_computed_tokens, num_computed_tokens + num_new_tokens) of
  // request `id`, first adopting `hit` (from find_prefix() just before) when the request holds
  // no blocks yet. Returns the request's whole block table, or nullopt, with nothing changed,
  // when the pool has too few free blocks (a normal result: the caller preempts or waits).
  // REQUIRES: hit is empty, or `id` holds no blocks and num_computed_tokens == hit.num_tokens.
  [[nodiscard]] std::optional<KvBlocks> allocate_slots(RequestId id, int64_t num_computed_tokens,
                                                       int64_t num_new_tokens, const PrefixHit& hit = {});

  // Offers the request's blocks that are full and computed (the first num_computed_tokens
  // tokens) to the prefix cache under `block_hashes`; blocks already offered are skipped.
  void cache_full_blocks(RequestId id, std::span<const BlockHash> block_hashes, int64_t num_computed_tokens);

  // Returns all of the request's blocks to the pool, last block first (cached ones stay
  // findable until reused). No-op when it holds none.
  void free(RequestId id);

  // See KvBlockPool::set_evict_hook and evict_free_cached.
  void set_evict_hook(KvBlockPool::EvictHook hook) { pool_.set_evict_hook(std::move(hook)); }
  int32_t evict_free_cached() { return pool_.evict_free_cached(); }
  [[nodiscard]] std::vector<std::pair<int32_t, BlockHash>> take_uncopied_cached(int32_t max) {
    return pool_.take_uncopied_cached(max);
  }

  // The request's current block table (empty when it holds none).
  [[nodiscard]] std::span<const int32_t> blocks_of(RequestId id) const;
  [[nodiscard]] int32_t num_requests() const { return static_cast<int32_t>(requests_.size()); }

  // Pool consistency plus: every block's ref count equals the number of requests holding it,
  // and no request holds a block twice.
  [[nodiscard]] Status check_consistency() const;

 private:
  struct Entry {
    std::vector<int32_t> blocks;
    int32_t num_cached_blocks = 0;  // blocks [0, this) were offered to the cache or are hits
  };

  KvBlockPool pool_;
  std::unordered_map<RequestId, Entry> requests_;
};

}  // namespace sn::scheduler
