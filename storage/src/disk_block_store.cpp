// DiskBlockStore (see disk_block_store.h): the in-memory index over the block files, their
// placement, capacity and LRU eviction, atomic writes and verified reads, all through Env.
// Thread safety: none inside; one caller at a time.
#include "supernode/storage/disk_block_store.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <set>

#include "block_format.h"

namespace sn::storage {
namespace {

constexpr std::string_view kBlockSuffix = ".blk";
constexpr std::string_view kTempSuffix = ".tmp";

uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

std::string normalize_dir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

std::string BlockKey::to_hex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return std::string(buf, 32);
}

std::optional<BlockKey> BlockKey::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  std::array<uint64_t, 2> half{};
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    uint64_t v;
    if (c >= '0' && c <= '9') {
      v = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    half[i / 16] = (half[i / 16] << 4) | v;
  }
  return BlockKey{half[0], half[1]};
}

DiskBlockStore::DiskBlockStore(Env& env, DiskBlockStoreOptions options)
    : env_(env), options_(std::move(options)), model_hash_(detail::model_id_hash(options_.model_id)) {
  for (std::string& dir : options_.dirs) {
    dir = normalize_dir(std::move(dir));
    Dir d;
    d.path = dir;
    d.cap = options_.capacity_bytes;
    dirs_.push_back(std::move(d));
  }
}

Result<std::unique_ptr<DiskBlockStore>> DiskBlockStore::open(Env& env, DiskBlockStoreOptions options,
                                                             const DiskScanProgress& progress) {
  const char* what = "opening the KV block store";
  if (options.dirs.empty()) return Status::invalid_argument(what, "no directory configured");
  if (options.capacity_bytes == 0) return Status::invalid_argument(what, "capacity_bytes is 0");
  std::set<std::string> seen;
  for (const std::string& dir : options.dirs) {
    if (dir.empty()) return Status::invalid_argument(what, "empty directory name");
    if (!seen.insert(normalize_dir(dir)).second) {
      return Status::invalid_argument(what, "directory " + dir + " is listed twice");
    }
  }
  std::unique_ptr<DiskBlockStore> store(new DiskBlockStore(env, std::move(options)));
  std::vector<std::vector<std::string>> listings;
  uint64_t total = 0;
  for (const Dir& dir : store->dirs_) {
    SN_RETURN_IF_ERROR(env.create_dirs(dir.path).with_context(what));
    Result<std::vector<std::string>> names = env.list_dir(dir.path);
    if (!names.ok()) return names.status().with_context(what);
    total += names->size();
    listings.push_back(std::move(*names));
  }
  uint64_t scanned = 0;
  for (uint32_t d = 0; d < store->dirs_.size(); ++d) {
    store->scan_dir(d, listings[d], total, scanned, progress);
  }
  for (uint32_t d = 0; d < store->dirs_.size(); ++d) store->refresh_cap(d, /*force=*/true);
  return store;
}

void DiskBlockStore::scan_dir(uint32_t d, const std::vector<std::string>& names, uint64_t total, uint64_t& scanned,
                                const DiskScanProgress& progress) {
  for (const std::string& name : names) {
    std::string path = dirs_[d].path + "/" + name;
    std::string_view stem = name;
    if (name.ends_with(kTempSuffix)) {
      // An interrupted put: never renamed, so never a block.
      if (env_.remove_file(path).is_ok()) ++temp_files_removed_;
    } else if (name.ends_with(kBlockSuffix)) {
      stem.remove_suffix(kBlockSuffix.size());
      std::optional<BlockKey> key = BlockKey::from_hex(stem);
      if (key) {  // anything else is not ours: left alone
        Result<uint64_t> payload = check_at_open(path, *key);
        if (payload.ok()) {
          if (index_.count(*key) != 0) {
            (void)env_.remove_file(path);  // the same block in a second directory
          } else {
            insert_entry(*key, d, *payload, /*most_recent=*/false);
          }
        } else if (payload.status().code() == Status::Code::kCorruption) {
          drop_corrupt(path, payload.status().message());
        }
        // Other errors (unreadable now): skipped, looked at again at the next open.
      }
    }
    ++scanned;
    if (progress) progress(scanned, total);
  }
}

Result<uint64_t> DiskBlockStore::check_at_open(const std::string& path, const BlockKey& key) {
  Result<std::unique_ptr<File>> f = env_.open_file(path, OpenMode::kRead);
  if (!f.ok()) return f.status();
  Result<uint64_t> size = (*f)->size();
  if (!size.ok()) return size.status();
  std::array<char, kBlockHeaderBytes> header{};
  Result<size_t> n = read_full(**f, 0, header);
  if (!n.ok()) return n.status();
  if (*n < kBlockHeaderBytes) return Status::corruption("truncated header", std::to_string(*n) + " bytes");
  Result<detail::BlockHeader> h = detail::decode_block_header(header);
  if (!h.ok()) return h.status();
  if (h->model_hash != model_hash_) return Status::corruption("written for another model");
  if (!(h->key == key)) return Status::corruption("key in header is " + h->key.to_hex());
  if (options_.block_bytes != 0 && h->payload_bytes != options_.block_bytes) {
    return Status::corruption("payload is " + std::to_string(h->payload_bytes) + " bytes, blocks here are " +
                              std::to_string(options_.block_bytes));
  }
  if (*size < kBlockHeaderBytes || *size - kBlockHeaderBytes != h->payload_bytes) {
    return Status::corruption("file is " + std::to_string(*size) + " bytes, header says " +
                              std::to_string(h->payload_bytes) + " + " + std::to_string(kBlockHeaderBytes));
  }
  return h->payload_bytes;
}

std::string DiskBlockStore::block_path(uint32_t d, const BlockKey& key) const {
  return dirs_[d].path + "/" + key.to_hex() + std::string(kBlockSuffix);
}

std::string DiskBlockStore::temp_path(uint32_t d, const BlockKey& key) const {
  return dirs_[d].path + "/" + key.to_hex() + std::string(kTempSuffix);
}

void DiskBlockStore::insert_entry(const BlockKey& key, uint32_t d, uint64_t payload_bytes, bool most_recent) {
  Dir& dir = dirs_[d];
  auto pos = most_recent ? dir.lru.insert(dir.lru.begin(), key) : dir.lru.insert(dir.lru.end(), key);
  index_[key] = Entry{.dir = d, .payload_bytes = payload_bytes, .lru = pos};
  dir.used += kBlockHeaderBytes + payload_bytes;
  ++dir.blocks;
}

void DiskBlockStore::drop_entry(Index::iterator it) {
  if (options_.on_drop) options_.on_drop(it->first);
  Dir& dir = dirs_[it->second.dir];
  dir.used -= kBlockHeaderBytes + it->second.payload_bytes;
  --dir.blocks;
  dir.lru.erase(it->second.lru);
  index_.erase(it);
}

std::vector<BlockKey> DiskBlockStore::keys() const {
  std::vector<BlockKey> out;
  out.reserve(index_.size());
  for (const auto& [key, entry] : index_) out.push_back(key);
  return out;
}

void DiskBlockStore::drop_corrupt(const std::string& path, std::string_view why) {
  (void)env_.remove_file(path);
  ++corrupt_dropped_;
  last_dropped_ = path + ": " + std::string(why);
}

void DiskBlockStore::refresh_cap(uint32_t d, bool force) {
  Dir& dir = dirs_[d];
  uint64_t now = env_.now_micros();
  if (!force && (dir.cap >= options_.capacity_bytes || now < dir.next_probe_us)) return;
  dir.next_probe_us = now + options_.free_space_probe_interval_us;
  Result<uint64_t> free = env_.free_bytes(dir.path);
  if (!free.ok()) return;  // keep the cap we have; try again at the next probe
  dir.cap = std::min(options_.capacity_bytes, sat_sub(dir.used + *free, options_.min_free_bytes));
  make_room(d, 0, nullptr);
}

bool DiskBlockStore::accepts(uint32_t d, uint64_t bytes) {
  if (env_.now_micros() < dirs_[d].paused_until_us) return false;
  refresh_cap(d, /*force=*/false);
  return bytes <= dirs_[d].cap;
}

void DiskBlockStore::make_room(uint32_t d, uint64_t incoming, const BlockKey* keep) {
  Dir& dir = dirs_[d];
  uint64_t credit = 0;  // the block being replaced gives its bytes back
  if (keep != nullptr) {
    auto it = index_.find(*keep);
    if (it != index_.end() && it->second.dir == d) credit = kBlockHeaderBytes + it->second.payload_bytes;
  }
  while (dir.used - credit + incoming > dir.cap) {
    auto victim = dir.lru.rbegin();
    if (keep != nullptr && victim != dir.lru.rend() && *victim == *keep) ++victim;
    if (victim == dir.lru.rend()) break;
    BlockKey key = *victim;
    // A file that will not go away is forgotten anyway; the next open finds it again.
    (void)env_.remove_file(block_path(d, key));
    drop_entry(index_.find(key));
    ++evictions_;
  }
}

Status DiskBlockStore::write_block_file(uint32_t d, const BlockKey& key, std::string_view payload, bool& renamed) {
  renamed = false;
  std::string tmp = temp_path(d, key);
  std::string fin = block_path(d, key);
  std::array<char, kBlockHeaderBytes> header{};
  detail::encode_block_header(model_hash_, key, payload, options_.mac_key, header);
  {
    Result<std::unique_ptr<File>> f = env_.open_file(tmp, OpenMode::kWriteTruncate);
    if (!f.ok()) return f.status();
    Status s = write_all(**f, 0, std::string_view(header.data(), header.size()));
    if (s.is_ok()) s = write_all(**f, kBlockHeaderBytes, payload);
    if (s.is_ok()) s = (*f)->sync();  // the data is durable before its name is
    f->reset();
    if (!s.is_ok()) {
      (void)env_.remove_file(tmp);
      return s;
    }
  }
  if (Status s = env_.rename_file(tmp, fin); !s.is_ok()) {
    (void)env_.remove_file(tmp);
    return s;
  }
  renamed = true;
  if (Status s = env_.sync_dir(dirs_[d].path); !s.is_ok()) {
    // Whether the name survives a crash is unknown; a put that fails leaves nothing.
    (void)env_.remove_file(fin);
    return s;
  }
  return Status::ok();
}

Status DiskBlockStore::put(const BlockKey& key, std::string_view payload) {
  std::string what = "caching KV block " + key.to_hex();
  if (options_.block_bytes != 0 && payload.size() != options_.block_bytes) {
    ++writes_failed_;
    return Status::invalid_argument(what, "payload is " + std::to_string(payload.size()) +
                                              " bytes, blocks here are " + std::to_string(options_.block_bytes));
  }
  const uint64_t total = kBlockHeaderBytes + payload.size();
  if (total > options_.capacity_bytes) {
    ++writes_failed_;
    return Status::invalid_argument(what, std::to_string(total) + " bytes exceed the per-directory cap of " +
                                              std::to_string(options_.capacity_bytes));
  }
  auto existing = index_.find(key);
  std::optional<uint32_t> target;
  if (existing != index_.end()) {
    if (accepts(existing->second.dir, total)) target = existing->second.dir;
  } else {
    const auto n = static_cast<uint32_t>(dirs_.size());
    const auto primary = static_cast<uint32_t>(key.lo % n);
    for (uint32_t j = 0; j < n && !target; ++j) {
      if (accepts((primary + j) % n, total)) target = (primary + j) % n;
    }
  }
  if (!target) {
    ++writes_failed_;
    return Status::resource_exhausted(what, "no directory has room (disks full or writes paused)");
  }
  const uint32_t d = *target;
  make_room(d, total, existing != index_.end() ? &key : nullptr);
  // `existing` stays valid: make_room erased only other entries, and erasing never rehashes.

  bool renamed = false;
  Status s = write_block_file(d, key, payload, renamed);
  if (!s.is_ok()) {
    ++writes_failed_;
    if (renamed && existing != index_.end()) drop_entry(existing);  // the old file was replaced
    if (s.code() == Status::Code::kResourceExhausted) {
      // The disk is fuller than the cap thought: hold what is there, pause, probe later.
      Dir& dir = dirs_[d];
      uint64_t now = env_.now_micros();
      dir.cap = std::min(dir.cap, dir.used);
      dir.paused_until_us = now + options_.free_space_probe_interval_us;
      dir.next_probe_us = dir.paused_until_us;
    }
    return s.with_context(what);
  }
  if (existing != index_.end()) drop_entry(existing);
  insert_entry(key, d, payload.size(), /*most_recent=*/true);
  ++writes_;
  return Status::ok();
}

Result<bool> DiskBlockStore::read_verified(Index::iterator it, std::span<char> out) {
  const BlockKey key = it->first;
  const std::string path = block_path(it->second.dir, key);
  Result<std::unique_ptr<File>> f = env_.open_file(path, OpenMode::kRead);
  if (!f.ok()) {
    if (f.status().code() != Status::Code::kNotFound) return f.status();
    drop_entry(it);  // deleted behind our back
    ++misses_;
    return false;
  }
  auto corrupt = [&](std::string_view why) {
    drop_entry(it);
    drop_corrupt(path, why);
    ++misses_;
    return false;
  };
  Result<uint64_t> size = (*f)->size();
  if (!size.ok()) return size.status();
  std::array<char, kBlockHeaderBytes> header{};
  Result<size_t> n = read_full(**f, 0, header);
  if (!n.ok()) return n.status();
  if (*n < kBlockHeaderBytes) return corrupt("truncated header");
  Result<detail::BlockHeader> h = detail::decode_block_header(header);
  if (!h.ok()) return corrupt(h.status().message());
  if (h->model_hash != model_hash_) return corrupt("written for another model");
  if (!(h->key == key)) return corrupt("key in header is " + h->key.to_hex());
  if (h->payload_bytes != out.size()) return corrupt("payload size changed since open");
  if (*size != kBlockHeaderBytes + out.size()) return corrupt("file size does not match its header");
  n = read_full(**f, kBlockHeaderBytes, out);
  if (!n.ok()) return n.status();
  if (*n < out.size()) return corrupt("truncated payload");
  if (detail::block_crc(header, std::string_view(out.data(), out.size())) != h->block_crc) {
    return corrupt("checksum mismatch");
  }
  if (!options_.mac_key.empty() && !detail::block_mac_ok(header, std::string_view(out.data(), out.size()), options_.mac_key)) {
    return corrupt("MAC mismatch (not written under this store's key)");
  }
  Dir& dir = dirs_[it->second.dir];
  dir.lru.splice(dir.lru.begin(), dir.lru, it->second.lru);
  ++hits_;
  return true;
}

Result<std::optional<std::string>> DiskBlockStore::get(const BlockKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::optional<std::string>();
  }
  std::string buf(it->second.payload_bytes, '\0');
  Result<bool> found = read_verified(it, buf);
  if (!found.ok()) {
    ++misses_;
    return found.status().with_context("reading KV block " + key.to_hex());
  }
  if (!*found) return std::optional<std::string>();
  return std::optional<std::string>(std::move(buf));
}

Result<std::optional<uint64_t>> DiskBlockStore::get_into(const BlockKey& key, std::span<char> out) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::optional<uint64_t>();
  }
  const uint64_t bytes = it->second.payload_bytes;
  if (out.size() < bytes) {
    return Status::invalid_argument("reading KV block " + key.to_hex(), "buffer of " + std::to_string(out.size()) +
                                                                          " bytes for a payload of " +
                                                                          std::to_string(bytes));
  }
  Result<bool> found = read_verified(it, out.first(bytes));
  if (!found.ok()) {
    ++misses_;
    return found.status().with_context("reading KV block " + key.to_hex());
  }
  if (!*found) return std::optional<uint64_t>();
  return std::optional<uint64_t>(bytes);
}

std::optional<uint64_t> DiskBlockStore::payload_bytes(const BlockKey& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second.payload_bytes;
}

Status DiskBlockStore::erase(const BlockKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return Status::ok();
  std::string path = block_path(it->second.dir, key);
  drop_entry(it);
  Status s = env_.remove_file(path);
  if (!s.is_ok() && s.code() != Status::Code::kNotFound) return s.with_context("erasing KV block " + key.to_hex());
  return Status::ok();
}

uint64_t DiskBlockStore::size_bytes() const {
  uint64_t total = 0;
  for (const Dir& dir : dirs_) total += dir.used;
  return total;
}

DiskBlockStoreStats DiskBlockStore::stats() const {
  DiskBlockStoreStats st;
  st.blocks = index_.size();
  st.bytes = size_bytes();
  st.hits = hits_;
  st.misses = misses_;
  st.corrupt_dropped = corrupt_dropped_;
  st.writes = writes_;
  st.writes_failed = writes_failed_;
  st.evictions = evictions_;
  st.temp_files_removed = temp_files_removed_;
  st.last_dropped = last_dropped_;
  const uint64_t now = env_.now_micros();
  for (const Dir& dir : dirs_) {
    st.dirs.push_back(DiskBlockStoreDirStats{.path = dir.path,
                                             .blocks = dir.blocks,
                                             .bytes = dir.used,
                                             .capacity_bytes = dir.cap,
                                             .paused = now < dir.paused_until_us});
  }
  return st;
}

}  // namespace sn::storage
