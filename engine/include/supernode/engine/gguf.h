// GGUF v2/v3 files: a validating reader over mmap and a writer (for generated models).
//
// The reader checks everything before anyone uses it: magic, version, counts against the
// bytes left, string and array lengths, key uniqueness, value types, tensor names, ranks,
// dims and types, data offsets and alignment against the file size, and overflow in every
// size computation. A malformed file gets a Status naming the file, the field and its byte
// offset; it never crashes and never allocates in proportion to an untrusted count before
// checking it against the file size.
//
//   Result<GgufFile> f = GgufFile::open("model.gguf");
//   if (!f.ok()) return f.status();
//   Result<int64_t> n_layer = f->get_int("llama.block_count");
//   const GgufTensor* w = f->tensor("token_embd.weight");
//
// Thread safety: a GgufFile is immutable after open(); const methods are safe
// concurrently. Views (string_view, tensor data) live as long as the GgufFile.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/hal/dtype.h"

namespace sn::engine {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

[[nodiscard]] const char* gguf_type_name(GgufType type);

// A typed array value. Elements are read on demand from the mapped file.
class GgufArray {
 public:
  [[nodiscard]] GgufType type() const { return type_; }
  [[nodiscard]] size_t size() const { return count_; }
  // REQUIRES: type() == kString, i < size().
  [[nodiscard]] std::string_view str(size_t i) const { return strings_[i]; }
  // REQUIRES: an integer or bool type, i < size().
  [[nodiscard]] int64_t as_int(size_t i) const;
  // REQUIRES: a numeric type, i < size().
  [[nodiscard]] double as_float(size_t i) const;

 private:
  friend class GgufFile;
  friend class GgufWriter;
  GgufType type_ = GgufType::kUint8;
  size_t count_ = 0;
  const uint8_t* data_ = nullptr;  // numeric elements, packed little-endian
  std::vector<std::string_view> strings_;
};

struct GgufKv {
  std::string_view key;
  GgufType type = GgufType::kUint8;
  uint64_t offset = 0;  // byte offset of the key in the file (for messages)
  // The value: exactly one of these is meaningful, by type.
  uint64_t u = 0;       // unsigned integers and bool
  int64_t i = 0;        // signed integers (also set for unsigned ones that fit)
  double f = 0.0;       // floats
  std::string_view s;   // strings
  GgufArray array;      // arrays
};

struct GgufTensor {
  std::string_view name;
  std::vector<int64_t> dims;  // ne0 first (the contiguous dimension)
  hal::DType type = hal::DType::kF32;
  uint64_t offset = 0;        // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;
  [[nodiscard]] int64_t n_elements() const;
};

// How open() holds the file. kMapped maps it (shares the page cache; cheap; tools). kPrivate
// reads the whole file into anonymous memory at open, so that the file being truncated or
// rewritten later cannot fault the process (a truncated mapping is SIGBUS, even for pages
// already copied on write): for a server that keeps a model for days while an admin may
// replace its file. Costs a read of the whole file at open.
enum class GgufOpenMode : uint8_t { kMapped, kPrivate };

class GgufFile {
 public:
  // Maps and validates `path`.
  [[nodiscard]] static Result<GgufFile> open(const std::string& path, GgufOpenMode mode = GgufOpenMode::kMapped);
  // Validates a copy of `bytes` held in memory; `name` stands for the path in messages.
  [[nodiscard]] static Result<GgufFile> from_bytes(std::string name, std::string_view bytes);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  [[nodiscard]] const std::string& path() const;
  [[nodiscard]] uint32_t version() const;
  [[nodiscard]] uint64_t file_size() const;
  [[nodiscard]] uint64_t alignment() const;
  [[nodiscard]] uint64_t data_offset() const;

  [[nodiscard]] const std::vector<GgufKv>& kvs() const;
  [[nodiscard]] const GgufKv* find(std::string_view key) const;

  // Typed getters. Errors: not_found when absent, invalid_argument naming the key and
  // both types when the stored type does not fit. get_int accepts every integer type
  // (and rejects unsigned values above INT64_MAX); get_float accepts f32/f64 and integers.
  [[nodiscard]] Result<int64_t> get_int(std::string_view key) const;
  [[nodiscard]] Result<double> get_float(std::string_view key) const;
  [[nodiscard]] Result<bool> get_bool(std::string_view key) const;
  [[nodiscard]] Result<std::string_view> get_string(std::string_view key) const;
  [[nodiscard]] Result<const GgufArray*> get_array(std::string_view key) const;
  // The same, with `fallback` when the key is absent (still an error on a wrong type).
  [[nodiscard]] Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  [[nodiscard]] Result<double> get_float_or(std::string_view key, double fallback) const;
  [[nodiscard]] Result<bool> get_bool_or(std::string_view key, bool fallback) const;
  [[nodiscard]] Result<std::string_view> get_string_or(std::string_view key, std::string_view fallback) const;

  [[nodiscard]] const std::vector<GgufTensor>& tensors() const;
  [[nodiscard]] const GgufTensor* tensor(std::string_view name) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds a GGUF v3 file in memory. Used by `supernode gen-model` and by tests.
// Thread safety: not thread-safe.
class GgufWriter {
 public:
  void add_u32(std::string key, uint32_t v);
  void add_i32(std::string key, int32_t v);
  void add_u64(std::string key, uint64_t v);
  void add_f32(std::string key, float v);
  void add_bool(std::string key, bool v);
  void add_string(std::string key, std::string v);
  void add_string_array(std::string key, std::vector<std::string> v);
  void add_f32_array(std::string key, std::vector<float> v);
  void add_i32_array(std::string key, std::vector<int32_t> v);
  // Copies the metadata keys and tensors of `file` for which the predicates return true
  // (tools that rewrite a model; tests that build malformed variants).
  template <typename KeepKv, typename KeepTensor>
  void add_from(const GgufFile& file, KeepKv keep_kv, KeepTensor keep_tensor) {
    for (const GgufKv& kv : file.kvs()) {
      if (keep_kv(kv.key)) add_kv_copy(kv);
    }
    for (const GgufTensor& t : file.tensors()) {
      if (keep_tensor(t.name)) {
        add_tensor(std::string(t.name), t.dims, t.type,
                   std::string(reinterpret_cast<const char*>(t.data), t.n_bytes));
      }
    }
  }
  // Copies one key-value pair as it is.
  void add_kv_copy(const GgufKv& kv);
  // dims: ne0 first. REQUIRES: data.size() matches dims and type.
  void add_tensor(std::string name, std::vector<int64_t> dims, hal::DType type, std::string data);
  // The file's bytes (alignment 32).
  [[nodiscard]] std::string serialize() const;
  [[nodiscard]] Status write(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    GgufType type;
    std::string value;  // encoded value bytes (after the type)
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    hal::DType type;
    std::string data;
  };
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace sn::engine
