// DiskBlockStore: round trips over several directories, restart recovery, crashes at every
// step of a put, torn / bit-flipped / truncated / foreign / misnamed block files, a full
// disk, fsync failure, LRU eviction, temp-file cleanup, and a randomized run against an
// in-memory model. Faults come from FaultInjectionEnv over the POSIX env in a temp dir
// (syncs are modelled, not issued, so the tests stay fast).
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "supernode/storage/crc32c.h"
#include "supernode/storage/disk_block_store.h"
#include "supernode/storage/fault_injection_env.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::storage;
using sn::Status;

namespace {

void check_ok(const Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

BlockKey key(uint64_t i) { return BlockKey{0x5eed000000000000ull ^ (i * 0x9e3779b97f4a7c15ull), i}; }

// Deterministic bytes for (block i, version v); sizes vary unless `size` is given.
std::string payload(uint64_t i, uint64_t v, size_t size = 0) {
  std::mt19937_64 rng(i * 1000003 + v);
  if (size == 0) size = 1 + rng() % 700;
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::optional<std::string> get_or_fail(DiskBlockStore& store, const BlockKey& k) {
  sn::Result<std::optional<std::string>> r = store.get(k);
  CHECK_TRUE_TEXT(r.ok(), r.status().to_string().c_str());
  return *r;
}

void check_returns(DiskBlockStore& store, const BlockKey& k, const std::string& want) {
  std::optional<std::string> got = get_or_fail(store, k);
  CHECK_TRUE_TEXT(got.has_value(), ("missing block " + k.to_hex()).c_str());
  CHECK_TRUE_TEXT(*got == want, ("wrong bytes for block " + k.to_hex()).c_str());
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

bool has_suffix_in(const std::vector<std::string>& dirs, const std::string& suffix) {
  for (const std::string& d : dirs) {
    for (const std::string& n : names_in(d)) {
      if (n.ends_with(suffix)) return true;
    }
  }
  return false;
}

}  // namespace

TEST_GROUP(DiskBlockStore) {
  std::unique_ptr<sn::testing::TempDir> tmp;
  std::unique_ptr<FaultInjectionEnv> env;
  std::vector<std::string> dirs;

  void setup() override {
    tmp = std::make_unique<sn::testing::TempDir>();
    env = std::make_unique<FaultInjectionEnv>(posix_env());
    dirs = {tmp->file("disk0"), tmp->file("disk1")};
  }
  void teardown() override {
    env.reset();
    tmp.reset();
  }

  DiskBlockStoreOptions options(uint64_t cap = 1 << 20, std::string model = "model-a") {
    DiskBlockStoreOptions o;
    o.dirs = dirs;
    o.capacity_bytes = cap;
    o.model_id = std::move(model);
    return o;
  }
  std::unique_ptr<DiskBlockStore> open(const DiskBlockStoreOptions& o, const DiskScanProgress& progress = {}) {
    sn::Result<std::unique_ptr<DiskBlockStore>> r = DiskBlockStore::open(*env, o, progress);
    CHECK_TRUE_TEXT(r.ok(), r.status().to_string().c_str());
    return std::move(*r);
  }
  std::string file_of(const BlockKey& k) const { return dirs[k.lo % dirs.size()] + "/" + k.to_hex() + ".blk"; }
};

TEST(DiskBlockStore, RoundTripAcrossTwoDirs) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  for (uint64_t i = 0; i < 10; ++i) check_ok(store->put(key(i), payload(i, 1)));
  LONGS_EQUAL(10, store->count());
  for (uint64_t i = 0; i < 10; ++i) {
    check_returns(*store, key(i), payload(i, 1));
    CHECK_TRUE(std::filesystem::exists(file_of(key(i))));
    CHECK_TRUE(store->contains(key(i)));
    CHECK_TRUE(store->payload_bytes(key(i)) == payload(i, 1).size());
  }
  std::string buf(1000, '\0');
  sn::Result<std::optional<uint64_t>> n = store->get_into(key(3), buf);
  CHECK_TRUE(n.ok() && n->has_value());
  CHECK_TRUE(buf.substr(0, **n) == payload(3, 1));
  std::string small(1, '\0');
  CHECK_TRUE(store->get_into(key(3), small).status().code() == Status::Code::kInvalidArgument);
  CHECK_FALSE(get_or_fail(*store, key(99)).has_value());

  DiskBlockStoreStats st = store->stats();
  LONGS_EQUAL(10, st.blocks);
  LONGS_EQUAL(11, st.hits);
  LONGS_EQUAL(1, st.misses);
  LONGS_EQUAL(10, st.writes);
  LONGS_EQUAL(2, st.dirs.size());
  LONGS_EQUAL(5, st.dirs[0].blocks);
  LONGS_EQUAL(5, st.dirs[1].blocks);
  LONGS_EQUAL(st.bytes, st.dirs[0].bytes + st.dirs[1].bytes);
  LONGS_EQUAL(st.bytes, store->size_bytes());

  // Replace and erase.
  check_ok(store->put(key(4), payload(4, 2)));
  check_returns(*store, key(4), payload(4, 2));
  LONGS_EQUAL(10, store->count());
  check_ok(store->erase(key(5)));
  check_ok(store->erase(key(5)));
  CHECK_FALSE(store->contains(key(5)));
  CHECK_FALSE(std::filesystem::exists(file_of(key(5))));
  CHECK_FALSE(get_or_fail(*store, key(5)).has_value());
}

TEST(DiskBlockStore, OptionsAreChecked) {
  DiskBlockStoreOptions o = options();
  o.dirs.clear();
  CHECK_FALSE(DiskBlockStore::open(*env, o).ok());
  o = options(0);
  CHECK_FALSE(DiskBlockStore::open(*env, o).ok());
  o = options();
  o.dirs.push_back(dirs[0] + "/");
  CHECK_FALSE(DiskBlockStore::open(*env, o).ok());
  o = options();
  o.block_bytes = 128;
  std::unique_ptr<DiskBlockStore> store = open(o);
  CHECK_TRUE(store->put(key(1), std::string(100, 'x')).code() == Status::Code::kInvalidArgument);
  check_ok(store->put(key(1), std::string(128, 'x')));
}

TEST(DiskBlockStore, ReopenFindsEveryBlock) {
  {
    std::unique_ptr<DiskBlockStore> store = open(options());
    for (uint64_t i = 0; i < 20; ++i) check_ok(store->put(key(i), payload(i, 1)));
  }
  uint64_t last_scanned = 0, last_total = 0, calls = 0;
  std::unique_ptr<DiskBlockStore> store = open(options(), [&](uint64_t scanned, uint64_t total) {
    CHECK_TRUE(scanned > last_scanned);
    last_scanned = scanned;
    last_total = total;
    ++calls;
  });
  LONGS_EQUAL(20, calls);
  LONGS_EQUAL(20, last_total);
  LONGS_EQUAL(20, last_scanned);
  LONGS_EQUAL(20, store->count());
  for (uint64_t i = 0; i < 20; ++i) check_returns(*store, key(i), payload(i, 1));
  LONGS_EQUAL(0, store->stats().corrupt_dropped);
}

TEST(DiskBlockStore, CrashAtEveryStepOfAPutLeavesTheBlockAbsentOrWhole) {
  // A put is open, two writes, fsync, rename, directory fsync: 6 mutating calls.
  for (int64_t n = 0; n <= 7; ++n) {
    {
      std::unique_ptr<DiskBlockStore> store = open(options());
      check_ok(store->put(key(1), payload(1, 1)));
      env->set_crash_after(n);
      Status s = store->put(key(2), payload(2, n + 1));
      CHECK_EQUAL(n >= 6, s.is_ok());
      (void)store->put(key(3), payload(3, 1));  // fails once the file system has stopped
    }
    check_ok(env->simulate_crash());
    std::unique_ptr<DiskBlockStore> store = open(options());
    check_returns(*store, key(1), payload(1, 1));
    std::optional<std::string> got = get_or_fail(*store, key(2));
    if (n >= 6) {
      CHECK_TRUE(got.has_value());  // acknowledged: durable
    }
    if (got) CHECK_TRUE(*got == payload(2, n + 1));
    LONGS_EQUAL(0, store->stats().corrupt_dropped);
    CHECK_FALSE(has_suffix_in(dirs, ".tmp"));
    check_ok(store->erase(key(2)));
    check_ok(store->erase(key(3)));
  }
}

TEST(DiskBlockStore, TornWritesAreDroppedAtGetOrAtOpen) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  check_ok(store->put(key(0), payload(0, 1, 300)));
  env->set_torn_writes(true);
  check_ok(store->put(key(1), payload(1, 1, 300)));  // the disk lies
  check_ok(store->put(key(2), payload(2, 1, 300)));
  env->set_torn_writes(false);
  CHECK_FALSE(get_or_fail(*store, key(1)).has_value());
  CHECK_FALSE(std::filesystem::exists(file_of(key(1))));
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  CHECK_TRUE(store->stats().last_dropped.find(key(1).to_hex()) != std::string::npos);
  store.reset();
  store = open(options());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);  // key(2), at open
  CHECK_FALSE(store->contains(key(2)));
  CHECK_FALSE(std::filesystem::exists(file_of(key(2))));
  check_returns(*store, key(0), payload(0, 1, 300));
}

TEST(DiskBlockStore, BitFlipsAreDroppedNotReturned) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  for (uint64_t i = 0; i < 3; ++i) check_ok(store->put(key(i), payload(i, 1, 200)));
  // A flipped payload bit passes the open-time header check and is caught at get.
  std::string f = sn::testing::read_file(file_of(key(0)));
  f[kBlockHeaderBytes + 150] ^= 0x10;
  sn::testing::write_file(file_of(key(0)), f);
  CHECK_FALSE(get_or_fail(*store, key(0)).has_value());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  LONGS_EQUAL(1, store->stats().misses);
  CHECK_FALSE(store->contains(key(0)));
  CHECK_FALSE(std::filesystem::exists(file_of(key(0))));
  // A flipped header bit (the payload length) is caught at open.
  store.reset();
  f = sn::testing::read_file(file_of(key(1)));
  f[33] ^= 0x01;
  sn::testing::write_file(file_of(key(1)), f);
  store = open(options());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  CHECK_FALSE(store->contains(key(1)));
  check_returns(*store, key(2), payload(2, 1, 200));
}

TEST(DiskBlockStore, ForeignModelBlocksAreDropped) {
  {
    std::unique_ptr<DiskBlockStore> store = open(options(1 << 20, "model-b"));
    for (uint64_t i = 0; i < 4; ++i) check_ok(store->put(key(i), payload(i, 1)));
  }
  std::unique_ptr<DiskBlockStore> store = open(options(1 << 20, "model-a"));
  LONGS_EQUAL(0, store->count());
  LONGS_EQUAL(4, store->stats().corrupt_dropped);
  CHECK_TRUE(store->stats().last_dropped.find("another model") != std::string::npos);
  CHECK_FALSE(has_suffix_in(dirs, ".blk"));
}

TEST(DiskBlockStore, ABlockUnderAnotherKeysNameIsDropped) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  check_ok(store->put(key(2), payload(2, 1)));
  check_ok(store->put(key(4), payload(4, 1)));  // same directory as key(2)
  // While open: key(4)'s file now holds key(2)'s block.
  std::filesystem::copy_file(file_of(key(2)), file_of(key(4)), std::filesystem::copy_options::overwrite_existing);
  CHECK_FALSE(get_or_fail(*store, key(4)).has_value());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  // At open: key(2)'s file renamed to key(6)'s name.
  store.reset();
  std::filesystem::rename(file_of(key(2)), file_of(key(6)));
  store = open(options());
  LONGS_EQUAL(0, store->count());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  CHECK_FALSE(std::filesystem::exists(file_of(key(6))));
}

TEST(DiskBlockStore, TruncatedFilesAreDropped) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  for (uint64_t i = 0; i < 3; ++i) check_ok(store->put(key(i), payload(i, 1, 400)));
  std::filesystem::resize_file(file_of(key(0)), kBlockHeaderBytes + 200);
  CHECK_FALSE(get_or_fail(*store, key(0)).has_value());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  store.reset();
  std::filesystem::resize_file(file_of(key(1)), kBlockHeaderBytes + 399);
  std::filesystem::resize_file(file_of(key(2)), 10);  // not even a header
  store = open(options());
  LONGS_EQUAL(0, store->count());
  LONGS_EQUAL(2, store->stats().corrupt_dropped);
  CHECK_FALSE(has_suffix_in(dirs, ".blk"));
}

TEST(DiskBlockStore, FullDiskDeclinesPutsShrinksTheCapAndKeepsServing) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  for (uint64_t i = 0; i < 6; ++i) check_ok(store->put(key(i), payload(i, 1, 500)));
  const uint64_t cap = options().capacity_bytes;
  env->set_disk_full(true);
  Status s = store->put(key(10), payload(10, 1, 500));  // disk0
  CHECK_TRUE(s.code() == Status::Code::kResourceExhausted);
  CHECK_TRUE(s.message().find("No space left on device") != std::string::npos);
  DiskBlockStoreStats st = store->stats();
  LONGS_EQUAL(st.dirs[0].bytes, st.dirs[0].capacity_bytes);
  CHECK_TRUE(st.dirs[0].paused);
  LONGS_EQUAL(cap, st.dirs[1].capacity_bytes);
  LONGS_EQUAL(1, st.writes_failed);
  // disk0 is paused, so the next disk0 block tries disk1, which is full too.
  CHECK_TRUE(store->put(key(12), payload(12, 1, 500)).code() == Status::Code::kResourceExhausted);
  CHECK_TRUE(store->stats().dirs[1].paused);
  // Both paused: declined without touching the disks.
  CHECK_TRUE(store->put(key(14), payload(14, 1, 500)).code() == Status::Code::kResourceExhausted);
  LONGS_EQUAL(3, store->stats().writes_failed);
  CHECK_FALSE(has_suffix_in(dirs, ".tmp"));
  for (uint64_t i = 0; i < 6; ++i) check_returns(*store, key(i), payload(i, 1, 500));
  LONGS_EQUAL(6, store->count());

  // Space comes back: after the probe interval the caps are re-read and writes resume.
  env->set_disk_full(false);
  CHECK_TRUE(store->put(key(16), payload(16, 1, 500)).code() == Status::Code::kResourceExhausted);  // still paused
  env->advance_clock(options().free_space_probe_interval_us);
  check_ok(store->put(key(16), payload(16, 1, 500)));
  LONGS_EQUAL(cap, store->stats().dirs[0].capacity_bytes);
  CHECK_FALSE(store->stats().dirs[0].paused);
}

TEST(DiskBlockStore, FsyncFailureFailsThePutAndLeavesNothing) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  check_ok(store->put(key(1), payload(1, 1)));
  env->set_sync_fails(true);
  Status s = store->put(key(2), payload(2, 1));
  CHECK_TRUE(s.code() == Status::Code::kIoError);
  CHECK_TRUE(s.message().find(key(2).to_hex()) != std::string::npos);
  // A replace whose fsync fails keeps the old block.
  CHECK_FALSE(store->put(key(1), payload(1, 2)).is_ok());
  env->set_sync_fails(false);
  CHECK_FALSE(store->contains(key(2)));
  CHECK_FALSE(get_or_fail(*store, key(2)).has_value());
  check_returns(*store, key(1), payload(1, 1));
  CHECK_FALSE(std::filesystem::exists(file_of(key(2))));
  CHECK_FALSE(has_suffix_in(dirs, ".tmp"));
  LONGS_EQUAL(2, store->stats().writes_failed);
  store.reset();
  store = open(options());
  LONGS_EQUAL(1, store->count());
}

TEST(DiskBlockStore, ShortWritesAreCompleted) {
  std::unique_ptr<DiskBlockStore> store = open(options());
  env->set_short_writes(true);
  check_ok(store->put(key(1), payload(1, 1, 1000)));
  env->set_short_writes(false);
  check_returns(*store, key(1), payload(1, 1, 1000));
}

TEST(DiskBlockStore, EvictsLeastRecentlyUsedWhenADirIsFull) {
  dirs = {tmp->file("only")};
  const uint64_t block = kBlockHeaderBytes + 100;
  std::unique_ptr<DiskBlockStore> store = open(options(4 * block));
  for (uint64_t i = 1; i <= 4; ++i) check_ok(store->put(key(i), payload(i, 1, 100)));
  check_returns(*store, key(1), payload(1, 1, 100));  // 1 is now the most recent
  check_ok(store->put(key(5), payload(5, 1, 100)));   // evicts 2
  CHECK_FALSE(store->contains(key(2)));
  CHECK_FALSE(std::filesystem::exists(file_of(key(2))));
  CHECK_TRUE(store->contains(key(1)));
  check_returns(*store, key(3), payload(3, 1, 100));
  check_ok(store->put(key(6), payload(6, 1, 100)));  // evicts 4 (order now 4, 1, 5, 3)
  CHECK_FALSE(store->contains(key(4)));
  check_ok(store->put(key(7), payload(7, 1, 100)));  // evicts 1
  CHECK_FALSE(store->contains(key(1)));
  for (uint64_t i : {3, 5, 6, 7}) CHECK_TRUE(store->contains(key(i)));
  LONGS_EQUAL(3, store->stats().evictions);
  LONGS_EQUAL(4 * block, store->size_bytes());
  // Too big for any directory: declined.
  CHECK_TRUE(store->put(key(8), payload(8, 1, 4 * block)).code() == Status::Code::kInvalidArgument);
  // A smaller cap at the next open evicts down to it.
  store.reset();
  store = open(options(2 * block));
  LONGS_EQUAL(2, store->count());
}

TEST(DiskBlockStore, OpenRemovesTempFilesAndLeavesStrangersAlone) {
  {
    std::unique_ptr<DiskBlockStore> store = open(options());
    check_ok(store->put(key(1), payload(1, 1)));
  }
  sn::testing::write_file(dirs[0] + "/" + key(7).to_hex() + ".tmp", "half a block");
  sn::testing::write_file(dirs[1] + "/" + key(8).to_hex() + ".tmp", "");
  sn::testing::write_file(dirs[1] + "/README", "not ours");
  sn::testing::write_file(dirs[1] + "/zz.blk", "not a key name");
  std::unique_ptr<DiskBlockStore> store = open(options());
  LONGS_EQUAL(2, store->stats().temp_files_removed);
  CHECK_FALSE(has_suffix_in(dirs, ".tmp"));
  CHECK_TRUE(std::filesystem::exists(dirs[1] + "/README"));
  CHECK_TRUE(std::filesystem::exists(dirs[1] + "/zz.blk"));
  LONGS_EQUAL(1, store->count());
  check_returns(*store, key(1), payload(1, 1));
}

// Thousands of puts, gets, erases, crashes and reopens with faults switched on at random,
// against a model of what each key may hold. Whatever happens, a get returns either
// nothing or exactly the bytes of a put of that key that may have survived; a block put
// successfully (and not torn) and still indexed must come back.
TEST(DiskBlockStore, RandomizedOperationsNeverReturnWrongBytes) {
  struct Expect {
    std::set<uint64_t> possible;   // versions that may be on disk
    std::optional<uint64_t> exact;  // the version that must be returned while indexed
  };
  std::mt19937_64 rng(20240607);
  std::map<uint64_t, Expect> model;
  const uint64_t kKeys = 40;
  DiskBlockStoreOptions o = options(6000);  // ~ 15 blocks per directory: evictions happen
  std::unique_ptr<DiskBlockStore> store = open(o);
  uint64_t version = 0;
  uint64_t crashes = 0, checked_hits = 0;
  DiskBlockStoreStats total;  // summed over every store opened
  auto retire = [&] {
    DiskBlockStoreStats st = store->stats();
    total.evictions += st.evictions;
    total.corrupt_dropped += st.corrupt_dropped;
    total.writes_failed += st.writes_failed;
    store.reset();
  };

  auto do_put = [&](uint64_t k) {
    uint64_t v = ++version;
    bool torn = false;
    uint64_t fault = rng() % 100;
    if (fault < 3) env->set_disk_full(true);
    else if (fault < 6) env->set_sync_fails(true);
    else if (fault < 9) env->set_short_writes(true);
    else if (fault < 12) torn = true, env->set_torn_writes(true);
    Status s = store->put(key(k), payload(k, v));
    env->set_disk_full(false);
    env->set_sync_fails(false);
    env->set_short_writes(false);
    env->set_torn_writes(false);
    Expect& e = model[k];
    if (s.is_ok()) {
      e.possible.clear();
      if (!torn) e.possible.insert(v);
      e.exact = torn ? std::nullopt : std::optional<uint64_t>(v);
    } else {
      e.exact.reset();  // a failed replace may have removed the old block
    }
  };

  for (int op = 0; op < 3000; ++op) {
    env->advance_clock(1'000'000);
    uint64_t k = rng() % kKeys;
    uint64_t r = rng() % 100;
    if (r < 45) {
      do_put(k);
    } else if (r < 80) {
      bool indexed = store->contains(key(k));
      std::optional<std::string> got = get_or_fail(*store, key(k));
      const Expect& e = model[k];
      if (got) {
        bool match = false;
        for (uint64_t v : e.possible) match = match || *got == payload(k, v);
        CHECK_TRUE_TEXT(match, ("unexpected bytes for key " + std::to_string(k)).c_str());
        if (e.exact) CHECK_TRUE(*got == payload(k, *e.exact));
        ++checked_hits;
      } else if (indexed && e.exact) {
        FAIL(("an intact block went missing: key " + std::to_string(k)).c_str());
      }
    } else if (r < 88) {
      if (store->erase(key(k)).is_ok()) model[k] = Expect{};
    } else if (r < 94) {
      env->set_crash_after(static_cast<int64_t>(rng() % 10));
      do_put(k);
      retire();
      check_ok(env->simulate_crash());
      store = open(o);
      ++crashes;
    } else {
      retire();
      store = open(o);
    }
    if (op % 50 == 0) {
      CHECK_FALSE(has_suffix_in(dirs, ".tmp"));
      DiskBlockStoreStats st = store->stats();
      LONGS_EQUAL(st.blocks, st.dirs[0].blocks + st.dirs[1].blocks);
      for (const DiskBlockStoreDirStats& d : st.dirs) CHECK_TRUE(d.bytes <= d.capacity_bytes);
    }
  }
  retire();
  CHECK_TRUE(crashes > 50);
  CHECK_TRUE(checked_hits > 300);
  CHECK_TRUE(total.evictions > 0);
  CHECK_TRUE(total.corrupt_dropped > 0);  // torn writes, caught
  CHECK_TRUE(total.writes_failed > 0);
}

// keys() lists the index; on_drop reports every block that leaves it (evicted, corrupt,
// erased), so an owner can mirror the key set for other threads.
TEST(DiskBlockStore, KeysAndDropNotificationsMirrorTheIndex) {
  std::set<uint64_t> mirror;
  DiskBlockStoreOptions o = options(4 * (kBlockHeaderBytes + 100));
  o.on_drop = [&](const BlockKey& k) { CHECK_TRUE(mirror.erase(k.lo) == 1); };
  std::unique_ptr<DiskBlockStore> store = open(o);
  // Keys 0, 2, 4, ... all land in disk0 (lo % 2 == 0), whose cap holds four blocks.
  for (uint64_t i = 0; i < 12; i += 2) {
    check_ok(store->put(key(i), payload(i, 1, 100)));
    mirror.insert(i);
  }
  LONGS_EQUAL(4, mirror.size());  // 0 and 2 were evicted and reported
  std::set<uint64_t> listed;
  for (const BlockKey& k : store->keys()) listed.insert(k.lo);
  CHECK_TRUE(listed == mirror);
  std::string f = sn::testing::read_file(file_of(key(4)));
  f[kBlockHeaderBytes + 10] ^= 0x01;
  sn::testing::write_file(file_of(key(4)), f);
  CHECK_FALSE(get_or_fail(*store, key(4)).has_value());
  check_ok(store->erase(key(6)));
  LONGS_EQUAL(2, mirror.size());
  listed.clear();
  for (const BlockKey& k : store->keys()) listed.insert(k.lo);
  CHECK_TRUE(listed == mirror);
}

// Regression: block files were world-readable and trusted on a CRC alone, which anyone able
// to write the directory can recompute. With a MAC key a forged block is dropped, not served.
TEST(DiskBlockStore, WithAMacKeyForgedBlocksAreDroppedAndFilesArePrivate) {
  DiskBlockStoreOptions o = options();
  o.mac_key = std::string(32, 'k');
  const std::string good = payload(1, 1, 256);
  {
    std::unique_ptr<DiskBlockStore> store = open(o);
    check_ok(store->put(key(1), good));
    check_ok(store->put(key(2), payload(2, 1, 256)));
  }
  CHECK_EQUAL(0600, static_cast<int>(std::filesystem::status(file_of(key(1))).permissions() & std::filesystem::perms::all));
  // Someone without the key edits block 2's payload and fixes both CRCs, as a CRC allows.
  std::string bytes = sn::testing::read_file(file_of(key(2)));
  bytes[kBlockHeaderBytes + 10] = static_cast<char>(bytes[kBlockHeaderBytes + 10] ^ 0x5a);
  auto put_u32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put_u32(40, crc32c_extend(crc32c(std::string_view(bytes.data(), 40)),
                            std::string_view(bytes.data() + kBlockHeaderBytes, bytes.size() - kBlockHeaderBytes)));
  put_u32(60, crc32c(std::string_view(bytes.data(), 60)));
  sn::testing::write_file(file_of(key(2)), bytes);
  {
    // Without the key the forgery passes every check: the CRC-only store serves it.
    DiskBlockStoreOptions plain = options();
    std::unique_ptr<DiskBlockStore> store = open(plain);
    std::optional<std::string> forged = get_or_fail(*store, key(2));
    CHECK_TRUE(forged.has_value() && *forged != payload(2, 1, 256));
  }
  std::unique_ptr<DiskBlockStore> store = open(o);
  check_returns(*store, key(1), good);
  CHECK_FALSE(get_or_fail(*store, key(2)).has_value());
  LONGS_EQUAL(1, store->stats().corrupt_dropped);
  // A store under another key serves none of them.
  store.reset();
  o.mac_key = std::string(32, 'x');
  std::unique_ptr<DiskBlockStore> other = open(o);
  CHECK_FALSE(get_or_fail(*other, key(1)).has_value());
}
