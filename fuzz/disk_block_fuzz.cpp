// libFuzzer target: the KV disk block store (storage/disk_block_store.h) reading a block
// file whose bytes are the fuzz input. The store runs over an in-memory Env (no disk I/O,
// so each input is fast and independent); each input is tried twice:
//   A. as it is, filed as `<kKey>.blk` (the key the seeds were written under), next to a
//      leftover temp file and a stranger's file, in a store that accepts any block size;
//   B. with both CRCs recomputed and filed under the key its header names, so mutations
//      of the other header fields (magic, version, model id hash, length) reach the checks
//      behind the CRCs; this store takes only kBlockBytes payloads, and it has a MAC key
//      (kMacKey) when the file's MAC field is not all zero, so a block written under that
//      key verifies and any change to it must fail the MAC.
// Each pass opens the store, reads the block (get, get_into with a short and an exact
// buffer), writes a block over it and reads that back, erases it and reopens. The
// invariant: a payload the store returns is exactly the file's bytes after a header whose
// CRC holds; a corrupt block is a miss, never an error or a crash.
// Seeds: corpus/disk_block/ (blocks the store wrote); dictionary: disk_block.dict.
// Thread safety: libFuzzer calls the entry point from one thread.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/check.h"
#include "supernode/storage/crc32c.h"
#include "supernode/storage/disk_block_store.h"
#include "supernode/storage/env.h"

namespace {

using sn::Result;
using sn::Status;
using sn::storage::BlockKey;
using sn::storage::DiskBlockStore;
using sn::storage::DiskBlockStoreOptions;
using sn::storage::kBlockHeaderBytes;

constexpr BlockKey kKey{0x0123456789abcdefull, 0xfedcba9876543210ull};
constexpr std::string_view kModelId = "fuzz-model";
constexpr uint64_t kBlockBytes = 256;
constexpr std::string_view kDir = "/kv0";
constexpr std::string_view kMacKey = "fuzz-mac-key";
constexpr size_t kMacOffset = 44;  // 16 bytes, before the header CRC at 60

// A file system in memory: paths to contents, directories as a set. Enough of POSIX for
// the store (no fsync effects, no ENOSPC: FaultInjectionEnv covers those in unit tests).
class MemEnv final : public sn::storage::Env {
 public:
  std::map<std::string, std::string, std::less<>> files;
  std::set<std::string, std::less<>> dirs;

  class MemFile final : public sn::storage::File {
   public:
    MemFile(MemEnv& env, std::string path) : env_(env), path_(std::move(path)) {}
    Result<size_t> pwrite(uint64_t offset, std::string_view data) override {
      std::string* f = contents();
      if (f == nullptr) return Status::io_error(path_, "removed while open");
      if (f->size() < offset + data.size()) f->resize(offset + data.size());
      std::memcpy(f->data() + offset, data.data(), data.size());
      return data.size();
    }
    Result<size_t> pread(uint64_t offset, std::span<char> out) override {
      std::string* f = contents();
      if (f == nullptr) return Status::io_error(path_, "removed while open");
      if (offset >= f->size()) return size_t{0};
      const size_t n = std::min<size_t>(out.size(), f->size() - offset);
      std::memcpy(out.data(), f->data() + offset, n);
      return n;
    }
    Status sync() override { return Status::ok(); }
    Result<uint64_t> size() override {
      std::string* f = contents();
      if (f == nullptr) return Status::io_error(path_, "removed while open");
      return uint64_t{f->size()};
    }
    const std::string& path() const override { return path_; }

   private:
    std::string* contents() {
      auto it = env_.files.find(path_);
      return it == env_.files.end() ? nullptr : &it->second;
    }
    MemEnv& env_;
    std::string path_;
  };

  Result<std::unique_ptr<sn::storage::File>> open_file(const std::string& path, sn::storage::OpenMode mode) override {
    if (mode == sn::storage::OpenMode::kRead) {
      if (files.count(path) == 0) return Status::not_found(path, "no such file");
    } else {
      if (dirs.count(parent(path)) == 0) return Status::not_found(path, "no such directory");
      files[path].clear();
    }
    return std::unique_ptr<sn::storage::File>(new MemFile(*this, path));
  }
  Status rename_file(const std::string& from, const std::string& to) override {
    auto it = files.find(from);
    if (it == files.end()) return Status::not_found(from, "no such file");
    std::string bytes = std::move(it->second);
    files.erase(it);
    files[to] = std::move(bytes);
    return Status::ok();
  }
  Status remove_file(const std::string& path) override {
    return files.erase(path) != 0 ? Status::ok() : Status::not_found(path, "no such file");
  }
  Status create_dirs(const std::string& dir) override {
    dirs.insert(dir);
    return Status::ok();
  }
  Status sync_dir(const std::string&) override { return Status::ok(); }
  Result<std::vector<std::string>> list_dir(const std::string& dir) override {
    if (dirs.count(dir) == 0) return Status::not_found(dir, "no such directory");
    std::vector<std::string> names;
    for (const auto& [path, bytes] : files) {
      if (parent(path) == dir) names.push_back(path.substr(dir.size() + 1));
    }
    return names;
  }
  Result<uint64_t> free_bytes(const std::string&) override { return uint64_t{1} << 30; }
  uint64_t now_micros() override { return now_ += 1000; }

 private:
  static std::string parent(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
  }
  uint64_t now_ = 0;
};

uint64_t get_le(std::string_view b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

void put_le32(std::string& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
}

std::string block_path(const BlockKey& key) { return std::string(kDir) + "/" + key.to_hex() + ".blk"; }

std::unique_ptr<DiskBlockStore> open_store(MemEnv& env, uint64_t block_bytes, std::string_view mac_key) {
  DiskBlockStoreOptions o;
  o.dirs = {std::string(kDir)};
  o.capacity_bytes = 1 << 20;
  o.block_bytes = block_bytes;
  o.model_id = std::string(kModelId);
  o.mac_key = std::string(mac_key);
  Result<std::unique_ptr<DiskBlockStore>> s = DiskBlockStore::open(env, o);
  SN_CHECK(s.ok()) << "open over an in-memory env failed: " << s.status().to_string();
  return std::move(*s);
}

// A payload returned for `file` must be exactly its bytes after a header whose CRC holds.
void check_returned(std::string_view file, std::string_view payload) {
  SN_CHECK(file.size() == kBlockHeaderBytes + payload.size()) << "returned " << payload.size() << " bytes of a "
                                                              << file.size() << "-byte file";
  SN_CHECK(file.substr(kBlockHeaderBytes) == payload) << "returned bytes that are not the file's";
  SN_CHECK(sn::storage::crc32c(file.substr(0, 60)) == get_le(file, 60, 4)) << "returned a block with a bad header CRC";
  SN_CHECK(sn::storage::crc32c_extend(sn::storage::crc32c(file.substr(0, 40)), payload) == get_le(file, 40, 4))
      << "returned a block with a bad block CRC";
}

void exercise(std::string_view file, const BlockKey& key, uint64_t block_bytes, std::string_view mac_key, bool extras) {
  MemEnv env;
  env.dirs.insert(std::string(kDir));
  env.files[block_path(key)] = std::string(file);
  if (extras) {
    env.files[std::string(kDir) + "/" + key.to_hex() + ".tmp"] = std::string(file);  // an interrupted put
    env.files[std::string(kDir) + "/not-a-key.blk"] = std::string(file);              // not ours: left alone
  }
  std::unique_ptr<DiskBlockStore> store = open_store(env, block_bytes, mac_key);
  if (extras) {
    SN_CHECK(env.files.count(std::string(kDir) + "/" + key.to_hex() + ".tmp") == 0) << "temp file left at open";
    SN_CHECK(env.files.count(std::string(kDir) + "/not-a-key.blk") == 1) << "a stranger's file was removed";
  }
  if (store->contains(key)) {
    const std::optional<uint64_t> n = store->payload_bytes(key);
    SN_CHECK(n && *n + kBlockHeaderBytes == file.size()) << "indexed a block whose length disagrees with its file";
    if (*n > 0) {
      std::vector<char> small(*n - 1);
      Result<std::optional<uint64_t>> r = store->get_into(key, small);
      SN_CHECK(!r.ok() && r.status().code() == Status::Code::kInvalidArgument) << "get_into a short buffer";
    }
    std::vector<char> exact(*n);
    Result<std::optional<uint64_t>> r = store->get_into(key, exact);
    SN_CHECK(r.ok()) << r.status().to_string();
    if (*r) check_returned(file, std::string_view(exact.data(), **r));
  }
  Result<std::optional<std::string>> got = store->get(key);
  SN_CHECK(got.ok()) << got.status().to_string();
  if (*got) check_returned(file, **got);

  // A write over whatever was there, read back; then gone after erase and a reopen.
  const std::string payload(block_bytes == 0 ? 100 : block_bytes, 'p');
  Status put = store->put(key, payload);
  SN_CHECK(put.is_ok()) << put.to_string();
  got = store->get(key);
  SN_CHECK(got.ok() && *got && **got == payload) << "a block just written did not read back";
  SN_CHECK(store->erase(key).is_ok());
  (void)store->stats();
  store.reset();
  store = open_store(env, block_bytes, mac_key);
  SN_CHECK(!store->contains(key)) << "an erased block came back";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // OpenSSL sets up its HMAC state at first use and keeps it for the process; do that
  // here, before libFuzzer counts allocations per input (it would read as a leak).
  exercise(std::string(kBlockHeaderBytes, '\0'), kKey, kBlockBytes, kMacKey, /*extras=*/false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  exercise(input, kKey, 0, {}, /*extras=*/true);
  if (size >= kBlockHeaderBytes) {
    std::string fixed(input);
    const std::string_view payload = std::string_view(fixed).substr(kBlockHeaderBytes);
    const uint32_t block_crc =
        sn::storage::crc32c_extend(sn::storage::crc32c(std::string_view(fixed).substr(0, 40)), payload);
    put_le32(fixed, 40, block_crc);
    put_le32(fixed, 60, sn::storage::crc32c(std::string_view(fixed).substr(0, 60)));
    const BlockKey key{get_le(fixed, 16, 8), get_le(fixed, 24, 8)};
    const bool has_mac = fixed.find_first_not_of('\0', kMacOffset) < 60;
    exercise(fixed, key, kBlockBytes, has_mac ? kMacKey : std::string_view(), /*extras=*/false);
  }
  return 0;
}
