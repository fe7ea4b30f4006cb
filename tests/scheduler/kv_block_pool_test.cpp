// The KV block pool: accounting, eviction order (LRU and scan resistance), the key map.
#include <vector>

#include "supernode/scheduler/kv_block_pool.h"

#include <CppUTest/TestHarness.h>

using namespace sn::scheduler;

namespace {

BlockHash key(uint64_t i) { return block_hash_next(block_hash_root("m", "s"), std::vector<int32_t>{static_cast<int32_t>(i)}); }

// Allocates one block, caches it under key(i) and releases it: a computed, finished block.
int32_t fill(KvBlockPool& pool, uint64_t i) {
  std::optional<std::vector<int32_t>> b = pool.allocate(1);
  CHECK_TRUE(b.has_value());
  CHECK_TRUE(pool.cache((*b)[0], key(i)));
  pool.release(*b);
  return (*b)[0];
}

void check_ok(const KvBlockPool& pool) {
  sn::Status s = pool.check_consistency();
  CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str());
  KvPoolStats st = pool.stats();
  LONGS_EQUAL(st.blocks_total, st.blocks_used + st.blocks_free);
}

}  // namespace

TEST_GROUP(KvBlockPool){};

TEST(KvBlockPool, AllocationIsAllOrNothingAndAccounted) {
  KvBlockPool pool({.num_blocks = 8, .block_size = 4});
  std::optional<std::vector<int32_t>> a = pool.allocate(5);
  CHECK_TRUE(a.has_value());
  LONGS_EQUAL(3, pool.num_free());
  CHECK_FALSE(pool.allocate(4).has_value());
  LONGS_EQUAL(3, pool.num_free());
  for (int32_t b : *a) LONGS_EQUAL(1, pool.ref_count(b));
  check_ok(pool);
  pool.release(*a);
  LONGS_EQUAL(8, pool.num_free());
  LONGS_EQUAL(0, pool.stats().blocks_used);
  check_ok(pool);
}

TEST(KvBlockPool, CachedFreeBlocksStayFindableUntilReused) {
  KvBlockPool pool({.num_blocks = 2, .block_size = 4});
  int32_t b = fill(pool, 1);
  CHECK_TRUE(pool.lookup(key(1)) == b);
  LONGS_EQUAL(2, pool.num_free());
  // A hit takes the block out of the free queue.
  pool.touch(std::vector<int32_t>{b});
  LONGS_EQUAL(1, pool.num_free());
  LONGS_EQUAL(1, pool.stats().hits);
  check_ok(pool);
  pool.release(std::vector<int32_t>{b});
  // The empty block goes first; then the cached one is evicted.
  std::optional<std::vector<int32_t>> all = pool.allocate(2);
  CHECK_TRUE(all.has_value());
  CHECK_FALSE(pool.lookup(key(1)).has_value());
  LONGS_EQUAL(1, pool.stats().evictions);
  check_ok(pool);
}

TEST(KvBlockPool, DuplicateKeyKeepsTheFirstBlock) {
  KvBlockPool pool({.num_blocks = 4, .block_size = 4});
  std::optional<std::vector<int32_t>> a = pool.allocate(2);
  CHECK_TRUE(pool.cache((*a)[0], key(9)));
  CHECK_FALSE(pool.cache((*a)[1], key(9)));
  CHECK_TRUE(pool.lookup(key(9)) == (*a)[0]);
  CHECK_FALSE(pool.block_key((*a)[1]).has_value());
  pool.release(*a);
  check_ok(pool);
}

TEST(KvBlockPool, LruEvictsLeastRecentlyFreedFirst) {
  KvBlockPool pool({.num_blocks = 3, .block_size = 4, .eviction = LruEviction{}});
  fill(pool, 1);
  fill(pool, 2);
  fill(pool, 3);  // every block is now cached and free, freed in the order 1, 2, 3
  // Whatever its use count, a block that was freed earlier is evicted earlier under LRU.
  pool.touch(std::vector<int32_t>{*pool.lookup(key(1))});
  pool.release(std::vector<int32_t>{*pool.lookup(key(1))});  // 1 is now the most recent
  CHECK_TRUE(pool.allocate(1).has_value());
  CHECK_FALSE(pool.lookup(key(2)).has_value());
  CHECK_TRUE(pool.lookup(key(3)).has_value());
  CHECK_TRUE(pool.allocate(1).has_value());
  CHECK_FALSE(pool.lookup(key(3)).has_value());
  CHECK_TRUE(pool.lookup(key(1)).has_value());
  LONGS_EQUAL(2, pool.stats().evictions);
  check_ok(pool);
}

// A hot shared prefix (reused) survives a one-off scan that is bigger than the rest of the
// pool under SegmentedLru, and is flushed by it under plain LRU.
static void run_scan(const EvictionPolicy& policy, bool expect_hot_kept) {
  KvBlockPool pool({.num_blocks = 10, .block_size = 4, .eviction = policy});
  // Hot prefix: two blocks, computed once and reused once.
  for (uint64_t i = 0; i < 2; ++i) fill(pool, 100 + i);
  for (uint64_t i = 0; i < 2; ++i) {
    int32_t b = *pool.lookup(key(100 + i));
    pool.touch(std::vector<int32_t>{b});
    pool.release(std::vector<int32_t>{b});
  }
  // A scan: 30 one-off blocks, 8 at a time (as one long prompt would hold them).
  for (uint64_t round = 0; round < 4; ++round) {
    std::optional<std::vector<int32_t>> blocks = pool.allocate(8);
    CHECK_TRUE(blocks.has_value());
    for (size_t j = 0; j < blocks->size(); ++j) (void)pool.cache((*blocks)[j], key(1000 + round * 8 + j));
    pool.release(*blocks);
    check_ok(pool);
  }
  CHECK_EQUAL(expect_hot_kept, pool.lookup(key(100)).has_value());
  CHECK_EQUAL(expect_hot_kept, pool.lookup(key(101)).has_value());
}

TEST(KvBlockPool, SegmentedLruIsScanResistant) {
  run_scan(SegmentedLruEviction{}, true);
  run_scan(LruEviction{}, false);
}

TEST(KvBlockPool, ProtectedQueueIsCappedAndAgesOut) {
  // Cap 2 of 10: the third reused block demotes the oldest protected one to probation.
  KvBlockPool pool({.num_blocks = 10, .block_size = 4, .eviction = SegmentedLruEviction{.protected_fraction = 0.2}});
  for (uint64_t i = 0; i < 3; ++i) fill(pool, i);
  for (uint64_t i = 0; i < 3; ++i) {
    int32_t b = *pool.lookup(key(i));
    pool.touch(std::vector<int32_t>{b});
    pool.release(std::vector<int32_t>{b});
  }
  check_ok(pool);
  // Evict everything but the protected two: 7 empty blocks, then the demoted key(0).
  CHECK_TRUE(pool.allocate(8).has_value());
  CHECK_FALSE(pool.lookup(key(0)).has_value());
  CHECK_TRUE(pool.lookup(key(1)).has_value());
  CHECK_TRUE(pool.lookup(key(2)).has_value());
  check_ok(pool);
}

// Write-through: each cached block is handed out once (used or free), up to `max` a call;
// a block cached again after reuse is handed out again.
TEST(KvBlockPool, UncopiedCachedBlocksAreHandedOutOnce) {
  KvBlockPool pool({.num_blocks = 4, .block_size = 4});
  const int32_t a = fill(pool, 1);
  std::optional<std::vector<int32_t>> used = pool.allocate(1);
  CHECK_TRUE(pool.cache((*used)[0], key(2)));  // cached and still used
  std::vector<std::pair<int32_t, BlockHash>> first = pool.take_uncopied_cached(1);
  LONGS_EQUAL(1, static_cast<long>(first.size()));
  std::vector<std::pair<int32_t, BlockHash>> second = pool.take_uncopied_cached(10);
  LONGS_EQUAL(1, static_cast<long>(second.size()));
  CHECK_TRUE(first[0].first != second[0].first);
  for (const auto& [b, k] : {first[0], second[0]}) CHECK_TRUE(pool.block_key(b) == k);
  LONGS_EQUAL(0, static_cast<long>(pool.take_uncopied_cached(10).size()));
  // Evict `a` by allocating everything free, then cache it under a new key.
  pool.release(*used);
  std::optional<std::vector<int32_t>> all = pool.allocate(4);
  CHECK_TRUE(all.has_value());
  CHECK_TRUE(pool.cache(a, key(3)));
  std::vector<std::pair<int32_t, BlockHash>> third = pool.take_uncopied_cached(10);
  LONGS_EQUAL(1, static_cast<long>(third.size()));
  LONGS_EQUAL(a, third[0].first);
  CHECK_TRUE(third[0].second == key(3));
  pool.release(*all);
  check_ok(pool);
}
