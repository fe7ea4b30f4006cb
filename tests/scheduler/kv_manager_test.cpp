// The KV manager: prefix hits, all-or-nothing slots, caching as blocks fill, freeing.
#include <vector>

#include "supernode/scheduler/kv_manager.h"

#include <CppUTest/TestHarness.h>

using namespace sn::scheduler;

namespace {

std::vector<BlockHash> chain(const std::string& salt, const std::vector<int32_t>& tokens, int32_t bs) {
  std::vector<BlockHash> out;
  BlockHash parent = block_hash_root("m", salt);
  for (size_t i = 0; i + static_cast<size_t>(bs) <= tokens.size(); i += static_cast<size_t>(bs)) {
    parent = block_hash_next(parent, std::span<const int32_t>(tokens).subspan(i, static_cast<size_t>(bs)));
    out.push_back(parent);
  }
  return out;
}

std::vector<int32_t> iota(int32_t n, int32_t start = 0) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back(start + i);
  return v;
}

void check_ok(const KvManager& kv) {
  sn::Status s = kv.check_consistency();
  CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str());
}

}  // namespace

TEST_GROUP(KvManager){};

TEST(KvManager, AllocatesBlocksAsTokensGrow) {
  KvManager kv({.num_blocks = 4, .block_size = 4});
  std::optional<KvBlocks> b = kv.allocate_slots(1, 0, 5);
  CHECK_TRUE(b.has_value());
  LONGS_EQUAL(2, b->size());
  b = kv.allocate_slots(1, 5, 3);  // still within two blocks
  LONGS_EQUAL(2, b->size());
  b = kv.allocate_slots(1, 8, 1);
  LONGS_EQUAL(3, b->size());
  CHECK_FALSE(kv.allocate_slots(2, 0, 8).has_value());  // needs 2, 1 free: nothing changes
  LONGS_EQUAL(1, kv.pool().num_free());
  check_ok(kv);
  kv.free(1);
  LONGS_EQUAL(4, kv.pool().num_free());
  LONGS_EQUAL(0, kv.num_requests());
  check_ok(kv);
}

TEST(KvManager, PrefixHitLeavesTheLastTokenToCompute) {
  KvManager kv({.num_blocks = 8, .block_size = 4});
  std::vector<int32_t> prompt = iota(8);  // exactly two blocks
  std::vector<BlockHash> keys = chain("t", prompt, 4);
  CHECK_TRUE(kv.allocate_slots(1, 0, 8).has_value());
  kv.cache_full_blocks(1, keys, 8);
  kv.free(1);
  PrefixHit hit = kv.find_prefix(keys, 8);
  LONGS_EQUAL(1, hit.blocks.size());  // not 2: token 7 must be computed to sample
  LONGS_EQUAL(4, hit.num_tokens);
  // With one more known token both blocks hit.
  std::vector<int32_t> longer = iota(9);
  LONGS_EQUAL(2, kv.find_prefix(chain("t", longer, 4), 9).blocks.size());
  std::optional<KvBlocks> b = kv.allocate_slots(2, hit.num_tokens, 4, hit);
  CHECK_TRUE(b.has_value());
  LONGS_EQUAL(hit.blocks[0], b->ids()[0]);
  LONGS_EQUAL(1, kv.pool().stats().hits);
  check_ok(kv);
  kv.free(2);
  check_ok(kv);
}

TEST(KvManager, SharedBlocksAreRefCounted) {
  KvManager kv({.num_blocks = 8, .block_size = 4});
  std::vector<int32_t> prompt = iota(9);
  std::vector<BlockHash> keys = chain("t", prompt, 4);
  CHECK_TRUE(kv.allocate_slots(1, 0, 9).has_value());
  kv.cache_full_blocks(1, keys, 9);
  // A second request with the same prompt while the first still runs.
  PrefixHit hit = kv.find_prefix(keys, 9);
  LONGS_EQUAL(2, hit.blocks.size());
  CHECK_TRUE(kv.allocate_slots(2, hit.num_tokens, 1, hit).has_value());
  LONGS_EQUAL(2, kv.pool().ref_count(hit.blocks[0]));
  check_ok(kv);
  kv.free(1);
  LONGS_EQUAL(1, kv.pool().ref_count(hit.blocks[0]));
  kv.free(2);
  LONGS_EQUAL(8, kv.pool().num_free());
  LONGS_EQUAL(2, kv.pool().stats().blocks_cached);
  check_ok(kv);
}

TEST(KvManager, HitOnFreeBlocksCountsAgainstFreeSpace) {
  // 3 blocks: two cached and free, one empty. A request hitting both cached blocks and
  // needing two more must be refused (only one block would be left), and nothing changes.
  KvManager kv({.num_blocks = 3, .block_size = 4});
  std::vector<int32_t> prompt = iota(12);
  std::vector<BlockHash> keys = chain("t", prompt, 4);
  CHECK_TRUE(kv.allocate_slots(1, 0, 8).has_value());
  kv.cache_full_blocks(1, keys, 8);
  kv.free(1);
  PrefixHit hit = kv.find_prefix(keys, 12);
  LONGS_EQUAL(2, hit.blocks.size());
  CHECK_FALSE(kv.allocate_slots(2, hit.num_tokens, 8, hit).has_value());
  LONGS_EQUAL(3, kv.pool().num_free());
  CHECK_TRUE(kv.allocate_slots(2, hit.num_tokens, 4, hit).has_value());
  LONGS_EQUAL(0, kv.pool().num_free());
  check_ok(kv);
}

TEST(KvManager, FreeReleasesTailFirst) {
  KvManager kv({.num_blocks = 3, .block_size = 2, .eviction = LruEviction{}});
  std::vector<int32_t> prompt = iota(6);
  std::vector<BlockHash> keys = chain("t", prompt, 2);
  std::optional<KvBlocks> b = kv.allocate_slots(1, 0, 6);
  kv.cache_full_blocks(1, keys, 6);
  kv.free(1);
  // The first eviction takes the last block of the prompt; the prefix survives longest.
  CHECK_TRUE(kv.allocate_slots(2, 0, 2).has_value());
  CHECK_FALSE(kv.pool().lookup(keys[2]).has_value());
  CHECK_TRUE(kv.pool().lookup(keys[0]).has_value());
  CHECK_TRUE(kv.pool().lookup(keys[1]).has_value());
  check_ok(kv);
}
