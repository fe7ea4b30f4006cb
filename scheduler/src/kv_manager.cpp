// The KV manager: per-request block lists over the KvBlockPool.
#include "supernode/scheduler/kv_manager.h"

#include <algorithm>
#include <string>

#include "supernode/base/check.h"

namespace sn::scheduler {

PrefixHit KvManager::find_prefix(std::span<const BlockHash> block_hashes, int64_t num_tokens) const {
  PrefixHit hit;
  if (num_tokens <= 0) return hit;
  size_t max_blocks = std::min(block_hashes.size(), static_cast<size_t>((num_tokens - 1) / block_size()));
  for (size_t i = 0; i < max_blocks; ++i) {
    std::optional<int32_t> b = pool_.lookup(block_hashes[i]);
    if (!b) break;
    hit.blocks.push_back(*b);
  }
  hit.num_tokens = static_cast<int32_t>(hit.blocks.size()) * block_size();
  return hit;
}

std::optional<KvBlocks> KvManager::allocate_slots(RequestId id, int64_t num_computed_tokens, int64_t num_new_tokens,
                                                  const PrefixHit& hit) {
  SN_CHECK(num_computed_tokens >= 0 && num_new_tokens >= 0)
      << "request " << id << ": computed " << num_computed_tokens << ", new " << num_new_tokens;
  auto it = requests_.find(id);
  size_t held = it == requests_.end() ? 0 : it->second.blocks.size();
  if (!hit.blocks.empty()) {
    SN_CHECK(held == 0 && num_computed_tokens == hit.num_tokens)
        << "request " << id << ": a prefix hit is adopted only by a request without blocks";
  }
  int32_t needed = blocks_for(num_computed_tokens + num_new_tokens) - static_cast<int32_t>(held + hit.blocks.size());
  // Hit blocks that sit in the free queue stop being free once adopted.
  int32_t hit_free = 0;
  for (int32_t b : hit.blocks) hit_free += pool_.ref_count(b) == 0 ? 1 : 0;
  if (std::max(needed, 0) > pool_.num_free() - hit_free) return std::nullopt;

  Entry& e = requests_[id];
  if (!hit.blocks.empty()) {
    pool_.touch(hit.blocks);
    e.blocks = hit.blocks;
    e.num_cached_blocks = static_cast<int32_t>(hit.blocks.size());
  }
  if (needed > 0) {
    std::optional<std::vector<int32_t>> fresh = pool_.allocate(needed);
    SN_CHECK(fresh.has_value()) << "free count checked above";
    e.blocks.insert(e.blocks.end(), fresh->begin(), fresh->end());
  }
  return KvBlocks(e.blocks);
}

void KvManager::cache_full_blocks(RequestId id, std::span<const BlockHash> block_hashes, int64_t num_computed_tokens) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Entry& e = it->second;
  size_t full = std::min({static_cast<size_t>(num_computed_tokens / block_size()), block_hashes.size(), e.blocks.size()});
  for (size_t i = static_cast<size_t>(e.num_cached_blocks); i < full; ++i) {
    (void)pool_.cache(e.blocks[i], block_hashes[i]);  // false: an equal block is already cached
  }
  e.num_cached_blocks = std::max(e.num_cached_blocks, static_cast<int32_t>(full));
}

void KvManager::free(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  std::vector<int32_t>& blocks = it->second.blocks;
  std::reverse(blocks.begin(), blocks.end());
  pool_.release(blocks);
  requests_.erase(it);
}

std::span<const int32_t> KvManager::blocks_of(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second.blocks;
}

Status KvManager::check_consistency() const {
  SN_RETURN_IF_ERROR(pool_.check_consistency());
  std::vector<int32_t> holders(static_cast<size_t>(pool_.num_blocks()), 0);
  for (const auto& [id, e] : requests_) {
    std::vector<int32_t> sorted = e.blocks;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return Status::internal("kv manager", "request " + std::to_string(id) + " holds a block twice");
    }
    for (int32_t b : e.blocks) ++holders[static_cast<size_t>(b)];
  }
  for (int32_t b = 0; b < pool_.num_blocks(); ++b) {
    if (holders[static_cast<size_t>(b)] != pool_.ref_count(b)) {
      return Status::internal("kv manager", "block " + std::to_string(b) + " has ref count " +
                                                std::to_string(pool_.ref_count(b)) + " but " +
                                                std::to_string(holders[static_cast<size_t>(b)]) + " holders");
    }
  }
  return Status::ok();
}

}  // namespace sn::scheduler
