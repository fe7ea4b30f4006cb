// The lower KV cache tiers (kv_tiers.h): a slot arena in host RAM with an LRU list, a copy of
// the disk store's key set, and one I/O thread that writes demoted blocks behind and reads
// fetched ones. The engine thread copies between tier 1 and host slots under mu_; the I/O
// thread holds mu_ only to claim and release slots, never across disk I/O. A slot the I/O
// thread is using is `busy` and is never reused or refilled until it lets go.
#include "supernode/scheduler/kv_tiers.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <string_view>
#include <utility>

#include "supernode/base/check.h"
#include "supernode/hal/fp16.h"

namespace sn::scheduler {
namespace {

storage::BlockKey to_disk_key(const BlockHash& h) { return storage::BlockKey{h.hi, h.lo}; }
BlockHash from_disk_key(const storage::BlockKey& k) { return BlockHash{k.hi, k.lo}; }

}  // namespace

size_t kv_int8_bytes(size_t f16_bytes, int32_t head_dim) {
  const size_t values = f16_bytes / 2;
  return values + values / static_cast<size_t>(head_dim) * sizeof(float);
}

// Zero rows get scale 0 (and decode to zeros).
void kv_int8_encode(std::span<const std::byte> f16, int32_t head_dim, std::span<std::byte> out) {
  const size_t g = static_cast<size_t>(head_dim);
  SN_CHECK(head_dim > 0 && f16.size() % (2 * g) == 0 && out.size() == kv_int8_bytes(f16.size(), head_dim))
      << f16.size() << " bytes in rows of " << head_dim;
  const size_t values = f16.size() / 2;
  const size_t groups = values / g;
  std::byte* scales = out.data();
  auto* q = reinterpret_cast<int8_t*>(out.data() + groups * sizeof(float));
  const auto* x = reinterpret_cast<const uint16_t*>(f16.data());
  for (size_t r = 0; r < groups; ++r) {
    const uint16_t* row = x + r * g;
    float amax = 0;
    for (size_t i = 0; i < g; ++i) amax = std::max(amax, std::fabs(hal::fp16_to_fp32(row[i])));
    const float scale = amax / 127.0f;
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;
    std::memcpy(scales + r * sizeof(float), &scale, sizeof(float));
    for (size_t i = 0; i < g; ++i) {
      const float v = std::clamp(hal::fp16_to_fp32(row[i]) * inv, -127.0f, 127.0f);
      q[r * g + i] = static_cast<int8_t>(std::lrintf(v));
    }
  }
}

void kv_int8_decode(std::span<const std::byte> in, int32_t head_dim, std::span<std::byte> f16) {
  const size_t g = static_cast<size_t>(head_dim);
  SN_CHECK(head_dim > 0 && f16.size() % (2 * g) == 0 && in.size() == kv_int8_bytes(f16.size(), head_dim))
      << f16.size() << " bytes in rows of " << head_dim;
  const size_t values = f16.size() / 2;
  const size_t groups = values / g;
  const std::byte* scales = in.data();
  const auto* q = reinterpret_cast<const int8_t*>(in.data() + groups * sizeof(float));
  auto* y = reinterpret_cast<uint16_t*>(f16.data());
  for (size_t r = 0; r < groups; ++r) {
    float scale;
    std::memcpy(&scale, scales + r * sizeof(float), sizeof(float));
    for (size_t i = 0; i < g; ++i) y[r * g + i] = hal::fp32_to_fp16(scale * static_cast<float>(q[r * g + i]));
  }
}

KvTiers::KvTiers(const KvTiersConfig& config, KvBlockIo& io)
    : io_(io), config_(config), block_bytes_(io.block_bytes()) {}

Result<std::unique_ptr<KvTiers>> KvTiers::open(storage::Env& env, const KvTiersConfig& config, KvBlockIo& io,
                                               const storage::DiskScanProgress& progress) {
  const char* what = "KV cache tiers";
  const size_t block_bytes = io.block_bytes();
  const int32_t head_dim = io.head_dim();
  if (block_bytes == 0 || head_dim <= 0 || block_bytes % (2 * static_cast<size_t>(head_dim)) != 0) {
    return Status::invalid_argument(what, "a KV block of " + std::to_string(block_bytes) +
                                              " bytes is not a whole number of rows of " + std::to_string(head_dim));
  }
  std::unique_ptr<KvTiers> t(new KvTiers(config, io));
  t->slot_bytes_ = config.int8 ? kv_int8_bytes(block_bytes, head_dim) : block_bytes;
  const uint64_t slots = config.host_bytes / t->slot_bytes_;
  if (!config.disk_dirs.empty() && slots < 4) {
    return Status::invalid_argument(what, "host RAM tier of " + std::to_string(config.host_bytes) +
                                              " bytes holds fewer than 4 blocks of " + std::to_string(t->slot_bytes_) +
                                              "; the disk tier reads through it");
  }
  if (slots > (1u << 30)) return Status::invalid_argument(what, "host RAM tier too large");
  t->num_slots_ = static_cast<int32_t>(slots);
  if (slots > 0) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = (slots * t->slot_bytes_ + kHuge - 1) / kHuge * kHuge;
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
      return Status::resource_exhausted(what, "cannot reserve " + std::to_string(bytes >> 20) + " MiB of host RAM");
    }
    (void)madvise(mem, bytes, MADV_HUGEPAGE);  // advice only
    t->arena_ = std::unique_ptr<std::byte[], detail::KvArenaFree>(static_cast<std::byte*>(mem), detail::KvArenaFree{bytes});
    t->arena_bytes_ = bytes;
  }
  if (config.int8) t->scratch_.resize(block_bytes);
  {
    MutexLock lock(t->mu_);
    t->slots_.resize(static_cast<size_t>(slots));
    for (int32_t s = t->num_slots_ - 1; s >= 0; --s) t->free_slots_.push_back(s);
    t->stats_.host.blocks_total = t->num_slots_;
  }
  if (!config.disk_dirs.empty()) {
    if (config.disk_bytes_per_dir == 0) return Status::invalid_argument(what, "disk tier capacity is 0 bytes");
    storage::DiskBlockStoreOptions o;
    o.dirs = config.disk_dirs;
    o.capacity_bytes = config.disk_bytes_per_dir;
    o.block_bytes = t->slot_bytes_;
    o.model_id = config.model_id + (config.int8 ? "|kv-int8-rows" : "|kv-f16");
    o.min_free_bytes = config.disk_min_free_bytes;
    o.mac_key = config.disk_mac_key;
    KvTiers* self_for_drop = t.get();
    o.on_drop = [self = self_for_drop](const storage::BlockKey& key) { self->on_disk_drop(key); };
    Result<std::unique_ptr<storage::DiskBlockStore>> store = storage::DiskBlockStore::open(env, o, progress);
    if (!store.ok()) return store.status().with_context(what);
    t->store_ = std::move(*store);
    MutexLock lock(t->mu_);
    for (const storage::BlockKey& k : t->store_->keys()) t->on_disk_.insert(from_disk_key(k));
    t->stats_.has_disk = true;
    t->snapshot_disk_stats();
  }
  if (t->store_ != nullptr || t->arena_bytes_ > 0) {
    KvTiers* self = t.get();
    t->io_thread_ = std::thread([self] { self->io_main(); });
  }
  return t;
}

void detail::KvArenaFree::operator()(std::byte* p) const {
  if (p != nullptr) munmap(p, bytes);
}

KvTiers::~KvTiers() {
  if (!io_thread_.joinable()) return;
  flush();
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  io_cv_.notify_all();
  io_thread_.join();
}

// ---- host slots ----

void KvTiers::lru_push_front(int32_t s) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  slot.prev = -1;
  slot.next = lru_head_;
  if (lru_head_ >= 0) slots_[static_cast<size_t>(lru_head_)].prev = s;
  lru_head_ = s;
  if (lru_tail_ < 0) lru_tail_ = s;
}

void KvTiers::lru_unlink(int32_t s) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  if (slot.prev >= 0) {
    slots_[static_cast<size_t>(slot.prev)].next = slot.next;
  } else {
    lru_head_ = slot.next;
  }
  if (slot.next >= 0) {
    slots_[static_cast<size_t>(slot.next)].prev = slot.prev;
  } else {
    lru_tail_ = slot.prev;
  }
  slot.prev = slot.next = -1;
}

int32_t KvTiers::take_slot() {
  int32_t s = -1;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    for (int32_t c = lru_tail_; c >= 0; c = slots_[static_cast<size_t>(c)].prev) {
      if (!slots_[static_cast<size_t>(c)].busy) {
        s = c;
        break;
      }
    }
    if (s < 0) return -1;
    Slot& victim = slots_[static_cast<size_t>(s)];
    lru_unlink(s);
    map_.erase(victim.key);
    if (victim.write_pending) ++stats_.disk.writes_skipped;  // its queued write finds the slot reused
    ++stats_.host.evictions;
    --stats_.host.blocks_used;
  }
  Slot& slot = slots_[static_cast<size_t>(s)];
  ++slot.gen;
  slot.used = slot.reserved = slot.write_pending = slot.busy = false;
  return s;
}

void KvTiers::demote(int32_t block, const BlockHash& key) {
  if (num_slots_ == 0) return;
  if (demote_locked(block, key)) io_cv_.notify_one();
}

bool KvTiers::demote_locked(int32_t block, const BlockHash& key) {
  MutexLock lock(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {  // already here (promoted earlier, or fetched): just recently used
    lru_unlink(it->second);
    lru_push_front(it->second);
    return false;
  }
  const int32_t s = take_slot();
  if (s < 0) return false;  // every slot busy with disk I/O: the block is dropped, as without tiers
  Slot& slot = slots_[static_cast<size_t>(s)];
  if (config_.int8) {
    io_.read_block(block, scratch_);
    kv_int8_encode(scratch_, io_.head_dim(), slot_data(s));
  } else {
    io_.read_block(block, slot_data(s));
  }
  slot.key = key;
  slot.used = true;
  map_.emplace(key, s);
  lru_push_front(s);
  ++stats_.host.blocks_used;
  ++stats_.host.demotions;
  stats_.host.bytes_in += static_cast<int64_t>(slot_bytes_);
  if (store_ != nullptr && on_disk_.count(key) == 0) {
    slot.write_pending = true;
    writes_.push_back(WriteJob{s, slot.gen, key});
    return true;  // the I/O thread has work
  }
  return false;
}

bool KvTiers::copy_down(int32_t block, const BlockHash& key) {
  if (num_slots_ == 0) return false;
  {
    MutexLock lock(mu_);
    if (map_.count(key) != 0 || on_disk_.count(key) != 0) return false;
  }
  demote(block, key);
  return true;
}

KvTierProbe KvTiers::probe(std::span<const BlockHash> keys) {
  KvTierProbe p;
  MutexLock lock(mu_);
  size_t i = 0;
  for (; i < keys.size(); ++i) {
    auto it = map_.find(keys[i]);
    if (it == map_.end()) break;
    lru_unlink(it->second);
    lru_push_front(it->second);
  }
  p.host = static_cast<int32_t>(i);
  stats_.host.hits += p.host;
  if (i < keys.size()) ++stats_.host.misses;
  if (store_ != nullptr && i < keys.size()) {
    size_t j = i;
    for (; j < keys.size(); ++j) {
      if (map_.count(keys[j]) == 0 && on_disk_.count(keys[j]) == 0) break;
    }
    stats_.disk.hits += static_cast<int64_t>(j - i);
    if (j < keys.size()) ++stats_.disk.misses;
    i = j;
  }
  p.any = static_cast<int32_t>(i);
  return p;
}

bool KvTiers::promote(const BlockHash& key, int32_t block) {
  MutexLock lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  const int32_t s = it->second;
  if (config_.int8) {
    kv_int8_decode(slot_data(s), io_.head_dim(), scratch_);
    io_.write_block(block, scratch_);
  } else {
    io_.write_block(block, slot_data(s));
  }
  ++stats_.host.promotions;
  stats_.host.bytes_out += static_cast<int64_t>(slot_bytes_);
  return true;
}

void KvTiers::fetch(uint64_t ticket, std::vector<BlockHash> keys) {
  {
    MutexLock lock(mu_);
    ++fetches_in_flight_;
    if (store_ == nullptr) {  // nothing to read: done at once
      completed_.push_back(ticket);
      --fetches_in_flight_;
      return;
    }
    fetches_.push_back(FetchJob{ticket, std::move(keys)});
  }
  io_cv_.notify_one();
}

std::vector<uint64_t> KvTiers::take_completed() {
  MutexLock lock(mu_);
  std::vector<uint64_t> out;
  out.swap(completed_);
  return out;
}

bool KvTiers::wait_completed(int64_t timeout_us) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout_us);
  MutexLock lock(mu_);
  while (completed_.empty()) {
    if (!done_cv_.wait_until(mu_, deadline)) return !completed_.empty();
  }
  return true;
}

int32_t KvTiers::fetches_in_flight() const {
  MutexLock lock(mu_);
  return fetches_in_flight_;
}

void KvTiers::flush() {
  MutexLock lock(mu_);
  while (!(writes_.empty() && fetches_.empty() && !io_active_)) done_cv_.wait(mu_);
}

void KvTiers::drop_host() {
  flush();
  MutexLock lock(mu_);
  for (int32_t s = lru_head_; s >= 0;) {
    const int32_t next = slots_[static_cast<size_t>(s)].next;
    Slot& slot = slots_[static_cast<size_t>(s)];
    map_.erase(slot.key);
    ++slot.gen;
    slot.used = slot.write_pending = false;
    slot.prev = slot.next = -1;
    free_slots_.push_back(s);
    --stats_.host.blocks_used;
    s = next;
  }
  lru_head_ = lru_tail_ = -1;
}

KvTierStats KvTiers::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

// ---- the I/O thread ----

void KvTiers::snapshot_disk_stats() {
  const storage::DiskBlockStoreStats d = store_->stats();
  KvTierDiskStats& s = stats_.disk;
  s.blocks = static_cast<int64_t>(d.blocks);
  s.bytes = static_cast<int64_t>(d.bytes);
  s.capacity_bytes = 0;
  s.paused_dirs = 0;
  for (const storage::DiskBlockStoreDirStats& dir : d.dirs) {
    s.capacity_bytes += static_cast<int64_t>(dir.capacity_bytes);
    s.paused_dirs += dir.paused ? 1 : 0;
  }
  s.corrupt_dropped = static_cast<int64_t>(d.corrupt_dropped);
  s.writes_failed = static_cast<int64_t>(d.writes_failed);
  s.evictions = static_cast<int64_t>(d.evictions);
  s.last_dropped = d.last_dropped;
}

void KvTiers::on_disk_drop(const storage::BlockKey& key) {
  MutexLock lock(mu_);
  on_disk_.erase(from_disk_key(key));
}

double KvTiers::warmup_fraction() const {
  return arena_bytes_ == 0 ? 1.0 : static_cast<double>(populated_bytes_.load()) / static_cast<double>(arena_bytes_);
}

void KvTiers::wait_warm(const std::function<void(double)>& progress) {
  size_t last = 0;
  while (populated_bytes_.load() < arena_bytes_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const size_t now = populated_bytes_.load();
    if (progress && now - last >= (size_t{64} << 20)) {
      progress(warmup_fraction());
      last = now;
    }
  }
  if (progress) progress(1.0);
}

void KvTiers::io_main() {
  for (;;) {
    mu_.lock();
    if (writes_.empty() && fetches_.empty() && !stop_ && populated_bytes_.load() < arena_bytes_) {
      // Idle: map the next piece of the arena in (MADV_POPULATE_WRITE, Linux 5.14+; where
      // the kernel refuses, warm-up simply ends and slots fault in as used).
      mu_.unlock();
      constexpr size_t kPiece = size_t{4} << 20;
      const size_t at = populated_bytes_.load();
      const size_t n = std::min(kPiece, arena_bytes_ - at);
#ifdef MADV_POPULATE_WRITE
      const bool ok = madvise(arena_.get() + at, n, MADV_POPULATE_WRITE) == 0;
#else
      const bool ok = false;
#endif
      populated_bytes_.store(ok ? at + n : arena_bytes_);
      continue;
    }
    while (!(stop_ || !writes_.empty() || !fetches_.empty())) io_cv_.wait(mu_);
    // Reads first: a request waits on them; writes only protect against later evictions.
    if (!fetches_.empty()) {
      FetchJob job = std::move(fetches_.front());
      fetches_.pop_front();
      io_active_ = true;
      mu_.unlock();
      run_fetch(job);
      mu_.lock();
      completed_.push_back(job.ticket);
      --fetches_in_flight_;
    } else if (!writes_.empty()) {
      WriteJob job = writes_.front();
      writes_.pop_front();
      io_active_ = true;
      mu_.unlock();
      run_write(job);
      mu_.lock();
    } else {
      mu_.unlock();
      return;  // stop_, with nothing left to do
    }
    io_active_ = false;
    snapshot_disk_stats();
    mu_.unlock();
    done_cv_.notify_all();
  }
}

void KvTiers::run_write(const WriteJob& job) {
  {
    MutexLock lock(mu_);
    Slot& slot = slots_[static_cast<size_t>(job.slot)];
    if (slot.gen != job.gen || !slot.used || !slot.write_pending) return;  // evicted before its turn
    slot.write_pending = false;
    if (on_disk_.count(job.key) != 0) return;
    slot.busy = true;
  }
  const std::span<std::byte> data = slot_data(job.slot);
  const Status st = store_->put(to_disk_key(job.key),
                                std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
  MutexLock lock(mu_);
  slots_[static_cast<size_t>(job.slot)].busy = false;
  if (st.is_ok()) {
    on_disk_.insert(job.key);
    ++stats_.disk.demotions;
    stats_.disk.bytes_written += static_cast<int64_t>(slot_bytes_);
  }
}

void KvTiers::run_fetch(const FetchJob& job) {
  for (const BlockHash& key : job.keys) {
    int32_t s = -1;
    {
      MutexLock lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) {  // already in host RAM
        lru_unlink(it->second);
        lru_push_front(it->second);
        continue;
      }
      if (on_disk_.count(key) == 0) return;
      s = take_slot();
      if (s < 0) return;
      Slot& slot = slots_[static_cast<size_t>(s)];
      slot.reserved = slot.busy = true;
    }
    const std::span<std::byte> out = slot_data(s);
    Result<std::optional<uint64_t>> got =
        store_->get_into(to_disk_key(key), std::span<char>(reinterpret_cast<char*>(out.data()), out.size()));
    MutexLock lock(mu_);
    Slot& slot = slots_[static_cast<size_t>(s)];
    slot.reserved = slot.busy = false;
    if (!got.ok() || !*got || **got != slot_bytes_) {
      free_slots_.push_back(s);
      return;  // a miss (corrupt, vanished) or a read error: the rest of the chain is recomputed
    }
    slot.key = key;
    slot.used = true;
    map_.emplace(key, s);
    lru_push_front(s);
    ++stats_.host.blocks_used;
    stats_.host.bytes_in += static_cast<int64_t>(slot_bytes_);
    ++stats_.disk.promotions;
    stats_.disk.bytes_read += static_cast<int64_t>(slot_bytes_);
  }
}

}  // namespace sn::scheduler
