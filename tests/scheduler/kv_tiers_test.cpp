// The lower KV cache tiers on their own: demotion into host RAM and promotion back, host LRU
// eviction, write-behind to disk, fetch from disk, restart recovery, corrupt, truncated and
// foreign disk blocks, a full disk, int8 blocks, and the counters. Blocks are random F16
// values in a RamBlocks (the tier-1 storage stand-in); contents are compared byte for byte.
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "supernode/hal/fp16.h"
#include "supernode/scheduler/kv_tiers.h"
#include "supernode/storage/env.h"
#include "supernode/storage/fault_injection_env.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::scheduler;

namespace {

void check_ok(const sn::Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

// Tier-1 stand-in: `n` blocks of `values` F16 values, rows of 8.
class RamBlocks final : public KvBlockIo {
 public:
  RamBlocks(int32_t n, size_t values) : values_(values), data_(static_cast<size_t>(n) * values) {}
  [[nodiscard]] size_t block_bytes() const override { return values_ * 2; }
  [[nodiscard]] int32_t head_dim() const override { return 8; }
  void read_block(int32_t b, std::span<std::byte> out) const override {
    std::memcpy(out.data(), data_.data() + static_cast<size_t>(b) * values_, values_ * 2);
  }
  void write_block(int32_t b, std::span<const std::byte> in) override {
    std::memcpy(data_.data() + static_cast<size_t>(b) * values_, in.data(), values_ * 2);
  }
  void fill_random(int32_t b, uint32_t seed) {
    std::vector<float> v = sn::testing::random_floats(values_, seed, -3.0f, 3.0f);
    for (size_t i = 0; i < values_; ++i) data_[static_cast<size_t>(b) * values_ + i] = sn::hal::fp32_to_fp16(v[i]);
  }
  void clear(int32_t b) { std::fill_n(data_.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(b) * values_), values_, 0); }
  [[nodiscard]] std::vector<uint16_t> block(int32_t b) const {
    return {data_.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(b) * values_),
            data_.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(b + 1) * values_)};
  }

 private:
  size_t values_;
  std::vector<uint16_t> data_;
};

BlockHash key(uint64_t i) { return block_hash_next(block_hash_root("m", "salt"), std::vector<int32_t>{int32_t(i)}); }

constexpr size_t kValues = 256;  // 512-byte blocks

std::unique_ptr<KvTiers> open_tiers(sn::storage::Env& env, RamBlocks& io, uint64_t host_blocks,
                                    const std::string& dir = "", const std::string& model = "model-a",
                                    bool int8 = false) {
  KvTiersConfig c;
  c.host_bytes = host_blocks * kValues * 2;
  c.model_id = model;
  c.int8 = int8;
  if (!dir.empty()) {
    c.disk_dirs = {dir};
    c.disk_bytes_per_dir = 1 << 20;
  }
  sn::Result<std::unique_ptr<KvTiers>> t = KvTiers::open(env, c, io);
  check_ok(t.status());
  return std::move(*t);
}

// Fetches `keys` from disk and waits for it.
void fetch_and_wait(KvTiers& t, std::vector<BlockHash> keys) {
  t.fetch(7, std::move(keys));
  for (int i = 0; i < 500 && t.fetches_in_flight() > 0; ++i) (void)t.wait_completed(10'000);
  std::vector<uint64_t> done = t.take_completed();
  LONGS_EQUAL(1, done.size());
  LONGS_EQUAL(7, done[0]);
}

}  // namespace

TEST_GROUP(KvTiers){};

TEST(KvTiers, DemotedBlocksComeBackByteForByte) {
  RamBlocks io(8, kValues);
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 4);
  for (int32_t b = 0; b < 3; ++b) {
    io.fill_random(b, 100 + b);
    t->demote(b, key(b));
  }
  const std::vector<BlockHash> chain = {key(0), key(1), key(2), key(3)};
  KvTierProbe p = t->probe(chain);
  LONGS_EQUAL(3, p.host);
  LONGS_EQUAL(3, p.any);
  for (int32_t b = 0; b < 3; ++b) {
    CHECK_TRUE(t->promote(key(b), 4 + b));
    CHECK_TRUE(io.block(b) == io.block(4 + b));
  }
  CHECK_FALSE(t->promote(key(3), 7));
  KvTierStats s = t->stats();
  LONGS_EQUAL(3, s.host.demotions);
  LONGS_EQUAL(3, s.host.promotions);
  LONGS_EQUAL(3, s.host.hits);
  LONGS_EQUAL(1, s.host.misses);
  LONGS_EQUAL(3, s.host.blocks_used);
  LONGS_EQUAL(3 * 512, s.host.bytes_in);
  LONGS_EQUAL(3 * 512, s.host.bytes_out);
  CHECK_FALSE(s.has_disk);
}

TEST(KvTiers, HostRamEvictsItsLeastRecentlyUsedBlock) {
  RamBlocks io(8, kValues);
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 3);
  for (int32_t b = 0; b < 3; ++b) t->demote(b, key(b));
  // Use key 0: key 1 is now the least recently used and goes first.
  LONGS_EQUAL(1, t->probe(std::vector<BlockHash>{key(0)}).host);
  t->demote(3, key(3));
  LONGS_EQUAL(0, t->probe(std::vector<BlockHash>{key(1)}).host);
  LONGS_EQUAL(1, t->probe(std::vector<BlockHash>{key(0)}).host);
  LONGS_EQUAL(1, t->probe(std::vector<BlockHash>{key(2)}).host);
  LONGS_EQUAL(1, t->probe(std::vector<BlockHash>{key(3)}).host);
  LONGS_EQUAL(1, t->stats().host.evictions);
  // Demoting a block that is already there copies nothing.
  t->demote(0, key(0));
  LONGS_EQUAL(4, t->stats().host.demotions);
}

TEST(KvTiers, DiskHoldsWhatHostRamDropsAndFetchBringsItBack) {
  sn::testing::TempDir dir;
  RamBlocks io(16, kValues);
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 4, dir.path());
  std::vector<BlockHash> chain;
  for (int32_t b = 0; b < 6; ++b) {
    io.fill_random(b, 200 + b);
    t->demote(b, key(b));
    t->flush();  // let each write land before the next demotion can evict its slot
    chain.push_back(key(b));
  }
  // Host RAM holds the last four; the disk, written behind, holds all six.
  KvTierStats s = t->stats();
  LONGS_EQUAL(4, s.host.blocks_used);
  LONGS_EQUAL(2, s.host.evictions);
  LONGS_EQUAL(6, s.disk.demotions);
  LONGS_EQUAL(6, s.disk.blocks);
  LONGS_EQUAL(6 * 512, s.disk.bytes_written);
  KvTierProbe p = t->probe(chain);
  LONGS_EQUAL(0, p.host);  // key 0 left host RAM
  LONGS_EQUAL(6, p.any);
  t->drop_host();
  LONGS_EQUAL(0, t->stats().host.blocks_used);
  // The first four come back from disk through host RAM, intact.
  fetch_and_wait(*t, {key(0), key(1), key(2), key(3)});
  p = t->probe(chain);
  LONGS_EQUAL(4, p.host);
  LONGS_EQUAL(6, p.any);
  for (int32_t b = 0; b < 4; ++b) {
    io.clear(8 + b);
    CHECK_TRUE(t->promote(key(b), 8 + b));
    CHECK_TRUE(io.block(b) == io.block(8 + b));
  }
  s = t->stats();
  LONGS_EQUAL(4, s.disk.promotions);
  LONGS_EQUAL(4 * 512, s.disk.bytes_read);
  LONGS_EQUAL(6, s.disk.demotions);  // fetched blocks are not written again
}

TEST(KvTiers, TheDiskTierSurvivesARestart) {
  sn::testing::TempDir dir;
  RamBlocks io(16, kValues);
  for (int32_t b = 0; b < 5; ++b) io.fill_random(b, 300 + b);
  std::vector<BlockHash> chain;
  {
    std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 8, dir.path());
    for (int32_t b = 0; b < 5; ++b) {
      t->demote(b, key(b));
      chain.push_back(key(b));
    }
  }  // the destructor finishes the writes
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 8, dir.path());
  LONGS_EQUAL(5, t->stats().disk.blocks);
  KvTierProbe p = t->probe(chain);
  LONGS_EQUAL(0, p.host);
  LONGS_EQUAL(5, p.any);
  fetch_and_wait(*t, chain);
  LONGS_EQUAL(5, t->probe(chain).host);
  for (int32_t b = 0; b < 5; ++b) {
    CHECK_TRUE(t->promote(key(b), 10 + b % 6));
    CHECK_TRUE(io.block(b) == io.block(10 + b % 6));
  }
  // Another model's tiers over the same directory see only foreign blocks, and drop them.
  t.reset();
  t = open_tiers(sn::storage::posix_env(), io, 8, dir.path(), "model-b");
  LONGS_EQUAL(0, t->stats().disk.blocks);
  LONGS_EQUAL(5, t->stats().disk.corrupt_dropped);
  LONGS_EQUAL(0, t->probe(chain).any);
}

TEST(KvTiers, CorruptAndTruncatedDiskBlocksAreDroppedAndMissed) {
  sn::testing::TempDir dir;
  RamBlocks io(16, kValues);
  std::vector<BlockHash> chain;
  {
    std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 8, dir.path());
    for (int32_t b = 0; b < 4; ++b) {
      io.fill_random(b, 400 + b);
      t->demote(b, key(b));
      chain.push_back(key(b));
    }
  }
  // Block 1: a payload byte flipped (found at read). Block 3: cut short (found at open).
  const std::string f1 = dir.file(sn::storage::BlockKey{key(1).hi, key(1).lo}.to_hex() + ".blk");
  const std::string f3 = dir.file(sn::storage::BlockKey{key(3).hi, key(3).lo}.to_hex() + ".blk");
  std::string bytes = sn::testing::read_file(f1);
  bytes[bytes.size() - 5] ^= 0x40;
  sn::testing::write_file(f1, bytes);
  bytes = sn::testing::read_file(f3);
  sn::testing::write_file(f3, bytes.substr(0, bytes.size() - 100));

  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 8, dir.path());
  LONGS_EQUAL(3, t->stats().disk.blocks);
  LONGS_EQUAL(1, t->stats().disk.corrupt_dropped);
  LONGS_EQUAL(3, t->probe(chain).any);  // 0, 1, 2 are indexed; 3 is gone
  fetch_and_wait(*t, {key(0), key(1), key(2)});
  // The fetch stops at the corrupt block: 0 arrives, 1 is dropped, 2 is not read.
  KvTierProbe p = t->probe(chain);
  LONGS_EQUAL(1, p.host);
  LONGS_EQUAL(1, p.any);
  KvTierStats s = t->stats();
  LONGS_EQUAL(2, s.disk.corrupt_dropped);
  LONGS_EQUAL(2, s.disk.blocks);
  CHECK_TRUE(s.disk.last_dropped.find(".blk") != std::string::npos);
  CHECK_TRUE(t->promote(key(0), 9));
  CHECK_TRUE(io.block(0) == io.block(9));
}

TEST(KvTiers, AFullDiskPausesWritesAndServingGoesOn) {
  sn::testing::TempDir dir;
  sn::storage::FaultInjectionEnv env(sn::storage::posix_env(), /*pass_syncs=*/true);
  RamBlocks io(16, kValues);
  std::unique_ptr<KvTiers> t = open_tiers(env, io, 4, dir.path());
  env.set_disk_full(true);
  for (int32_t b = 0; b < 6; ++b) {
    io.fill_random(b, 500 + b);
    t->demote(b, key(b));
    t->flush();  // no write in flight: host RAM evicts in plain LRU order (it skips busy slots)
  }
  KvTierStats s = t->stats();
  LONGS_EQUAL(0, s.disk.blocks);
  LONGS_EQUAL(0, s.disk.demotions);
  CHECK_TRUE(s.disk.writes_failed >= 1);
  CHECK_TRUE(s.disk.paused_dirs == 1);
  // Host RAM still serves the last four.
  for (int32_t b = 2; b < 6; ++b) {
    CHECK_TRUE(t->promote(key(b), 10));
    CHECK_TRUE(io.block(b) == io.block(10));
  }
  // Space comes back: after the probe interval writes resume.
  env.set_disk_full(false);
  env.advance_clock(60'000'000);
  io.fill_random(6, 506);
  t->demote(6, key(6));
  t->flush();
  LONGS_EQUAL(1, t->stats().disk.blocks);
}

TEST(KvTiers, Int8BlocksAreHalfTheSizeAndCloseToTheOriginal) {
  sn::testing::TempDir dir;
  RamBlocks io(8, kValues);
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 8, dir.path(), "model-a", /*int8=*/true);
  LONGS_EQUAL(kValues + kValues / 8 * 4, t->slot_bytes());
  io.fill_random(0, 600);
  t->demote(0, key(0));
  t->drop_host();  // through the disk as well
  fetch_and_wait(*t, {key(0)});
  CHECK_TRUE(t->promote(key(0), 1));
  const std::vector<uint16_t> a = io.block(0), b = io.block(1);
  for (size_t r = 0; r < kValues / 8; ++r) {
    float amax = 0;
    for (size_t i = 0; i < 8; ++i) amax = std::max(amax, std::fabs(sn::hal::fp16_to_fp32(a[r * 8 + i])));
    for (size_t i = 0; i < 8; ++i) {
      const float x = sn::hal::fp16_to_fp32(a[r * 8 + i]), y = sn::hal::fp16_to_fp32(b[r * 8 + i]);
      // Half a quantization step, plus F16 rounding of the result.
      CHECK_TRUE_TEXT(std::fabs(x - y) <= amax / 254.0f * 1.01f + std::fabs(x) * 1e-3f,
                      ("row " + std::to_string(r)).c_str());
    }
  }
  // An F16 store over the same directory treats the int8 blocks as foreign.
  t.reset();
  t = open_tiers(sn::storage::posix_env(), io, 8, dir.path());
  LONGS_EQUAL(0, t->stats().disk.blocks);
}

TEST(KvTiers, BadConfigIsRefusedWithAReason) {
  RamBlocks io(4, kValues);
  KvTiersConfig c;
  c.host_bytes = 512;  // one block
  c.disk_dirs = {"/nonexistent-root-dir/kv"};
  c.disk_bytes_per_dir = 1 << 20;
  sn::Result<std::unique_ptr<KvTiers>> t = KvTiers::open(sn::storage::posix_env(), c, io);
  CHECK_FALSE(t.ok());
  CHECK_TRUE(t.status().to_string().find("fewer than 4 blocks") != std::string::npos);
  c.host_bytes = 1 << 20;
  c.disk_bytes_per_dir = 0;
  t = KvTiers::open(sn::storage::posix_env(), c, io);
  CHECK_FALSE(t.ok());
}

TEST(KvTiers, Int8CodecKeepsZerosExtremesAndSigns) {
  const int32_t hd = 4;
  const std::vector<float> x = {0, 0, 0, 0, 65504, -65504, 1, -1, 0.5f, -0.25f, 0.125f, 0};
  std::vector<uint16_t> h(x.size()), back(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = sn::hal::fp32_to_fp16(x[i]);
  std::vector<std::byte> q(kv_int8_bytes(h.size() * 2, hd));
  LONGS_EQUAL(12 + 3 * 4, q.size());
  kv_int8_encode(std::as_bytes(std::span(h)), hd, q);
  kv_int8_decode(q, hd, std::as_writable_bytes(std::span(back)));
  for (size_t i = 0; i < 4; ++i) LONGS_EQUAL(0, back[i]);  // a zero row stays exactly zero
  DOUBLES_EQUAL(65504.0, sn::hal::fp16_to_fp32(back[4]), 0.0);
  DOUBLES_EQUAL(-65504.0, sn::hal::fp16_to_fp32(back[5]), 0.0);
  DOUBLES_EQUAL(0.0, sn::hal::fp16_to_fp32(back[6]), 0.0);  // 1 is below half a step of 516
  DOUBLES_EQUAL(0.5, sn::hal::fp16_to_fp32(back[8]), 0.5 / 254 + 1e-3);
  DOUBLES_EQUAL(-0.25, sn::hal::fp16_to_fp32(back[9]), 0.5 / 254 + 1e-3);
  DOUBLES_EQUAL(0.125, sn::hal::fp16_to_fp32(back[10]), 0.5 / 254 + 1e-3);
}

// Write-through: copy_down copies a block that stays in tier 1 into host RAM and (behind)
// disk once; a second copy_down of the same key, or of one only on disk, copies nothing.
TEST(KvTiers, CopyDownWritesThroughOnce) {
  sn::testing::TempDir dir;
  RamBlocks io(8, kValues);
  io.fill_random(0, 900);
  {
    std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 4, dir.path());
    CHECK_TRUE(t->copy_down(0, key(0)));
    CHECK_FALSE(t->copy_down(0, key(0)));
    t->flush();
    LONGS_EQUAL(1, t->stats().disk.blocks);
    t->drop_host();
    CHECK_FALSE(t->copy_down(0, key(0)));  // on disk already
  }
  std::unique_ptr<KvTiers> t = open_tiers(sn::storage::posix_env(), io, 4, dir.path());
  LONGS_EQUAL(1, t->stats().disk.blocks);
  fetch_and_wait(*t, {key(0)});
  CHECK_TRUE(t->promote(key(0), 5));
  CHECK_TRUE(io.block(0) == io.block(5));
}
