// The KV block pool: intrusive doubly-linked free queues over a block array, so every queue
// operation is O(1) and nothing allocates after construction except the key map.
#include "supernode/scheduler/kv_block_pool.h"

#include <string>

#include "supernode/base/check.h"

namespace sn::scheduler {

KvBlockPool::KvBlockPool(const KvPoolConfig& config)
    : block_size_(config.block_size), blocks_(static_cast<size_t>(config.num_blocks)) {
  SN_CHECK(config.num_blocks > 0 && config.block_size > 0)
      << "num_blocks " << config.num_blocks << ", block_size " << config.block_size;
  segmented_ = std::holds_alternative<SegmentedLruEviction>(config.eviction);
  double fraction = segmented_ ? std::get<SegmentedLruEviction>(config.eviction).protected_fraction : 0.0;
  SN_CHECK(fraction >= 0.0 && fraction <= 1.0) << "protected_fraction " << fraction;
  protected_cap_ = static_cast<int32_t>(fraction * config.num_blocks);
  cached_.reserve(blocks_.size());
  for (int32_t b = 0; b < config.num_blocks; ++b) push_back(Queue::kEmpty, b);
}

KvBlockPool::List& KvBlockPool::list(Queue q) {
  return const_cast<List&>(static_cast<const KvBlockPool*>(this)->list(q));
}

const KvBlockPool::List& KvBlockPool::list(Queue q) const {
  switch (q) {
    case Queue::kEmpty: return empty_;
    case Queue::kProbation: return probation_;
    case Queue::kProtected: return protected_;
    case Queue::kNone: break;
  }
  SN_CHECK(false) << "no free queue";
  return empty_;
}

void KvBlockPool::push_back(Queue q, int32_t b) {
  Block& blk = blocks_[b];
  SN_CHECK(blk.queue == Queue::kNone) << "block " << b << " already queued";
  List& l = list(q);
  blk.queue = q;
  blk.prev = l.tail;
  blk.next = -1;
  if (l.tail >= 0) {
    blocks_[l.tail].next = b;
  } else {
    l.head = b;
  }
  l.tail = b;
  ++l.size;
  ++num_free_;
}

void KvBlockPool::unlink(int32_t b) {
  Block& blk = blocks_[b];
  SN_CHECK(blk.queue != Queue::kNone) << "block " << b << " is not free";
  List& l = list(blk.queue);
  if (blk.prev >= 0) {
    blocks_[blk.prev].next = blk.next;
  } else {
    l.head = blk.next;
  }
  if (blk.next >= 0) {
    blocks_[blk.next].prev = blk.prev;
  } else {
    l.tail = blk.prev;
  }
  --l.size;
  --num_free_;
  blk.queue = Queue::kNone;
  blk.prev = blk.next = -1;
}

void KvBlockPool::rebalance_protected() {
  // The oldest protected blocks lose their status: they age out through probation.
  while (protected_.size > protected_cap_) {
    int32_t b = protected_.head;
    unlink(b);
    blocks_[b].reused = false;
    push_back(Queue::kProbation, b);
  }
}

int32_t KvBlockPool::ref_count(int32_t block) const {
  SN_CHECK(block >= 0 && block < num_blocks()) << "block " << block;
  return blocks_[block].ref;
}

std::optional<BlockHash> KvBlockPool::block_key(int32_t block) const {
  SN_CHECK(block >= 0 && block < num_blocks()) << "block " << block;
  return blocks_[block].key;
}

KvPoolStats KvBlockPool::stats() const {
  KvPoolStats s = stats_;
  s.blocks_total = num_blocks();
  s.blocks_free = num_free_;
  s.blocks_used = num_blocks() - num_free_;
  s.blocks_cached = static_cast<int32_t>(cached_.size());
  return s;
}

std::optional<std::vector<int32_t>> KvBlockPool::allocate(int32_t n) {
  SN_CHECK(n >= 0) << "n " << n;
  if (n > num_free_) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    int32_t b = empty_.head >= 0 ? empty_.head : probation_.head >= 0 ? probation_.head : protected_.head;
    unlink(b);
    Block& blk = blocks_[b];
    if (blk.key) {
      if (evict_hook_) evict_hook_(b, *blk.key);
      cached_.erase(*blk.key);
      blk.key.reset();
      ++stats_.evictions;
    }
    blk.reused = false;
    blk.ref = 1;
    out.push_back(b);
  }
  return out;
}

int32_t KvBlockPool::evict_free_cached() {
  int32_t n = 0;
  for (Queue q : {Queue::kProbation, Queue::kProtected}) {
    while (list(q).head >= 0) {
      const int32_t b = list(q).head;
      unlink(b);
      Block& blk = blocks_[b];
      if (evict_hook_) evict_hook_(b, *blk.key);
      cached_.erase(*blk.key);
      blk.key.reset();
      blk.reused = false;
      ++stats_.evictions;
      push_back(Queue::kEmpty, b);
      ++n;
    }
  }
  return n;
}

std::vector<std::pair<int32_t, BlockHash>> KvBlockPool::take_uncopied_cached(int32_t max) {
  std::vector<std::pair<int32_t, BlockHash>> out;
  for (int32_t b = 0; b < num_blocks() && static_cast<int32_t>(out.size()) < max; ++b) {
    Block& blk = blocks_[static_cast<size_t>(b)];
    if (!blk.key || blk.copied) continue;
    blk.copied = true;
    out.emplace_back(b, *blk.key);
  }
  return out;
}

std::optional<int32_t> KvBlockPool::lookup(const BlockHash& key) const {
  auto it = cached_.find(key);
  if (it == cached_.end()) return std::nullopt;
  return it->second;
}

void KvBlockPool::touch(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    SN_CHECK(b >= 0 && b < num_blocks()) << "block " << b;
    Block& blk = blocks_[b];
    SN_CHECK(blk.key.has_value()) << "touch of uncached block " << b;
    if (blk.ref == 0) unlink(b);
    ++blk.ref;
    if (!blk.reused && segmented_) ++stats_.promotions;
    blk.reused = true;
    ++stats_.hits;
  }
}

void KvBlockPool::release(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    SN_CHECK(b >= 0 && b < num_blocks()) << "block " << b;
    Block& blk = blocks_[b];
    SN_CHECK(blk.ref > 0) << "release of free block " << b;
    if (--blk.ref > 0) continue;
    if (!blk.key) {
      blk.reused = false;
      push_back(Queue::kEmpty, b);
    } else if (segmented_ && blk.reused) {
      push_back(Queue::kProtected, b);
      rebalance_protected();
    } else {
      push_back(Queue::kProbation, b);
    }
  }
}

bool KvBlockPool::cache(int32_t block, const BlockHash& key) {
  SN_CHECK(block >= 0 && block < num_blocks()) << "block " << block;
  Block& blk = blocks_[block];
  SN_CHECK(blk.ref > 0 && !blk.key) << "cache of block " << block << " (ref " << blk.ref << ")";
  ++stats_.misses;
  if (!cached_.emplace(key, block).second) return false;
  blk.key = key;
  blk.copied = false;
  return true;
}

Status KvBlockPool::check_consistency() const {
  auto fail = [](const std::string& what) { return Status::internal("kv block pool", what); };
  int32_t counted[4] = {0, 0, 0, 0};
  for (Queue q : {Queue::kEmpty, Queue::kProbation, Queue::kProtected}) {
    const List& l = list(q);
    int32_t prev = -1;
    int32_t n = 0;
    for (int32_t b = l.head; b >= 0; b = blocks_[b].next) {
      if (blocks_[b].queue != q) return fail("block " + std::to_string(b) + " linked into the wrong queue");
      if (blocks_[b].prev != prev) return fail("broken back link at block " + std::to_string(b));
      if (++n > num_blocks()) return fail("cycle in a free queue");
      prev = b;
    }
    if (prev != l.tail || n != l.size) return fail("free queue size or tail is wrong");
    counted[static_cast<int>(q)] = n;
  }
  if (counted[1] + counted[2] + counted[3] != num_free_) return fail("num_free disagrees with the queues");
  if (protected_.size > protected_cap_) return fail("protected queue over its cap");
  int32_t n_keyed = 0;
  for (int32_t b = 0; b < num_blocks(); ++b) {
    const Block& blk = blocks_[b];
    if (blk.ref < 0) return fail("negative ref count on block " + std::to_string(b));
    if ((blk.ref == 0) != (blk.queue != Queue::kNone)) {
      return fail("block " + std::to_string(b) + " ref " + std::to_string(blk.ref) + " vs free-queue membership");
    }
    if (blk.queue == Queue::kEmpty && blk.key) return fail("cached block in the empty queue");
    if ((blk.queue == Queue::kProbation || blk.queue == Queue::kProtected) && !blk.key) {
      return fail("uncached block in a cache queue");
    }
    if (blk.key) {
      ++n_keyed;
      auto it = cached_.find(*blk.key);
      if (it == cached_.end() || it->second != b) return fail("block key missing from the map");
    }
  }
  if (n_keyed != static_cast<int32_t>(cached_.size())) return fail("key map holds stale entries");
  return Status::ok();
}

}  // namespace sn::scheduler
