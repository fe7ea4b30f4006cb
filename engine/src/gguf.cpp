// GGUF reader and writer. See gguf.h for the contract.
//
// The reader walks the file once with a bounds-checked cursor. Every count read from the
// file is checked against the bytes that remain before anything is reserved, so a hostile
// count can never cause a large allocation; every size computation checks for overflow.
// Errors carry the file name, the field being read and its byte offset.
#include "supernode/engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <unordered_map>

#include "supernode/base/check.h"

namespace sn::engine {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kMaxNameLength = 256;
constexpr uint64_t kMaxKeyLength = 65535;

// Size in bytes of a scalar GGUF type, 0 for string/array/unknown.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

bool is_known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }
bool is_integer(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kInt8 || t == GgufType::kUint16 || t == GgufType::kInt16 ||
         t == GgufType::kUint32 || t == GgufType::kInt32 || t == GgufType::kUint64 || t == GgufType::kInt64;
}
bool is_signed(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 || t == GgufType::kInt64;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Decodes a scalar stored at p (little-endian host assumed: x86-64) into the kv's fields.
void decode_scalar(GgufType t, const uint8_t* p, uint64_t* u, int64_t* i, double* f) {
  *u = 0;
  *i = 0;
  *f = 0;
  switch (t) {
    case GgufType::kUint8: *u = load<uint8_t>(p); break;
    case GgufType::kBool: *u = load<uint8_t>(p); break;
    case GgufType::kInt8: *i = load<int8_t>(p); break;
    case GgufType::kUint16: *u = load<uint16_t>(p); break;
    case GgufType::kInt16: *i = load<int16_t>(p); break;
    case GgufType::kUint32: *u = load<uint32_t>(p); break;
    case GgufType::kInt32: *i = load<int32_t>(p); break;
    case GgufType::kUint64: *u = load<uint64_t>(p); break;
    case GgufType::kInt64: *i = load<int64_t>(p); break;
    case GgufType::kFloat32: *f = load<float>(p); break;
    case GgufType::kFloat64: *f = load<double>(p); break;
    default: break;
  }
  if (is_signed(t)) {
    *u = static_cast<uint64_t>(*i);
    *f = static_cast<double>(*i);
  } else if (is_integer(t) || t == GgufType::kBool) {
    *i = static_cast<int64_t>(*u);
    *f = static_cast<double>(*u);
  }
}

bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

std::string offset_text(uint64_t off) { return "offset " + std::to_string(off); }

// A bounds-checked cursor over the file's bytes.
class Cursor {
 public:
  Cursor(const std::string& name, const uint8_t* base, uint64_t size) : name_(name), base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  Status error(std::string_view field, uint64_t at, std::string_view detail) const {
    return Status::corruption(name_, std::string(field) + " at " + offset_text(at) + ": " + std::string(detail));
  }

  Status need(std::string_view field, uint64_t n) const {
    if (n > remaining()) {
      return error(field, pos_,
                   "truncated: needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                       " left (file is " + std::to_string(size_) + " bytes)");
    }
    return Status::ok();
  }

  template <typename T>
  Status read(std::string_view field, T* out) {
    SN_RETURN_IF_ERROR(need(field, sizeof(T)));
    *out = load<T>(base_ + pos_);
    pos_ += sizeof(T);
    return Status::ok();
  }

  Status read_string(std::string_view field, uint64_t max_len, std::string_view* out) {
    const uint64_t at = pos_;
    uint64_t len = 0;
    SN_RETURN_IF_ERROR(read(field, &len));
    if (len > max_len) {
      return error(field, at, "string length " + std::to_string(len) + " exceeds the limit of " + std::to_string(max_len));
    }
    SN_RETURN_IF_ERROR(need(field, len));
    *out = std::string_view(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return Status::ok();
  }

  const uint8_t* here() const { return base_ + pos_; }
  void skip(uint64_t n) { pos_ += n; }  // REQUIRES: need(n) succeeded

 private:
  const std::string& name_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

}  // namespace

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kUint8: return "u8";
    case GgufType::kInt8: return "i8";
    case GgufType::kUint16: return "u16";
    case GgufType::kInt16: return "i16";
    case GgufType::kUint32: return "u32";
    case GgufType::kInt32: return "i32";
    case GgufType::kFloat32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "u64";
    case GgufType::kInt64: return "i64";
    case GgufType::kFloat64: return "f64";
  }
  return "unknown";
}

int64_t GgufArray::as_int(size_t i) const {
  SN_CHECK(i < count_) << "index " << i << " of " << count_;
  uint64_t u;
  int64_t s;
  double f;
  decode_scalar(type_, data_ + i * scalar_size(type_), &u, &s, &f);
  return is_signed(type_) ? s : static_cast<int64_t>(u);
}

double GgufArray::as_float(size_t i) const {
  SN_CHECK(i < count_) << "index " << i << " of " << count_;
  uint64_t u;
  int64_t s;
  double f;
  decode_scalar(type_, data_ + i * scalar_size(type_), &u, &s, &f);
  return f;
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

struct GgufFile::Impl {
  std::string path;
  std::string owned;  // from_bytes: the copy
  void* map = nullptr;
  uint64_t size = 0;
  const uint8_t* base = nullptr;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<GgufKv> kvs;
  std::vector<GgufTensor> tensors;
  std::unordered_map<std::string_view, size_t> kv_index;
  std::unordered_map<std::string_view, size_t> tensor_index;

  ~Impl() {
    if (map != nullptr) munmap(map, size);
  }

  Status parse();
  Status parse_value(Cursor& c, GgufKv& kv, GgufType type, std::string_view field);
};

Status GgufFile::Impl::parse_value(Cursor& c, GgufKv& kv, GgufType type, std::string_view field) {
  kv.type = type;
  if (type == GgufType::kString) return c.read_string(field, std::numeric_limits<uint64_t>::max(), &kv.s);
  if (type == GgufType::kArray) {
    const uint64_t at = c.pos();
    uint32_t et = 0;
    uint64_t count = 0;
    SN_RETURN_IF_ERROR(c.read(field, &et));
    if (!is_known_type(et)) return c.error(field, at, "unknown array element type " + std::to_string(et));
    const GgufType elem = static_cast<GgufType>(et);
    if (elem == GgufType::kArray) return c.error(field, at, "nested arrays are not supported");
    SN_RETURN_IF_ERROR(c.read(field, &count));
    kv.array.type_ = elem;
    if (elem == GgufType::kString) {
      // Each string takes at least its 8-byte length: bound the count before reserving.
      if (count > c.remaining() / 8) {
        return c.error(field, at, "array of " + std::to_string(count) + " strings cannot fit in the " +
                                      std::to_string(c.remaining()) + " bytes left");
      }
      kv.array.strings_.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        std::string_view s;
        SN_RETURN_IF_ERROR(c.read_string(field, std::numeric_limits<uint64_t>::max(), &s));
        kv.array.strings_.push_back(s);
      }
      kv.array.count_ = count;
      return Status::ok();
    }
    const uint64_t es = scalar_size(elem);
    uint64_t bytes = 0;
    if (mul_overflows(count, es, &bytes)) return c.error(field, at, "array size overflows");
    SN_RETURN_IF_ERROR(c.need(field, bytes));
    if (elem == GgufType::kBool) {
      for (uint64_t i = 0; i < count; ++i) {
        if (c.here()[i] > 1) return c.error(field, c.pos() + i, "bool element is " + std::to_string(c.here()[i]));
      }
    }
    kv.array.data_ = c.here();
    kv.array.count_ = count;
    c.skip(bytes);
    return Status::ok();
  }
  const uint64_t at = c.pos();
  const uint64_t es = scalar_size(type);
  SN_RETURN_IF_ERROR(c.need(field, es));
  decode_scalar(type, c.here(), &kv.u, &kv.i, &kv.f);
  if (type == GgufType::kBool && kv.u > 1) return c.error(field, at, "bool value is " + std::to_string(kv.u));
  c.skip(es);
  return Status::ok();
}

Status GgufFile::Impl::parse() {
  Cursor c(path, base, size);
  char magic[4] = {};
  SN_RETURN_IF_ERROR(c.need("magic", 4));
  std::memcpy(magic, c.here(), 4);
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    if (std::memcmp(magic, "FUGG", 4) == 0) {
      return Status::not_supported(path, "big-endian GGUF files are not supported");
    }
    return Status::invalid_argument(path, "not a GGUF file (magic bytes are not \"GGUF\")");
  }
  c.skip(4);
  SN_RETURN_IF_ERROR(c.read("version", &version));
  if (version != 2 && version != 3) {
    return Status::not_supported(path, "GGUF version " + std::to_string(version) + " (supported: 2, 3)");
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  SN_RETURN_IF_ERROR(c.read("tensor count", &n_tensors));
  SN_RETURN_IF_ERROR(c.read("metadata count", &n_kv));
  // A key-value pair takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; a tensor
  // info at least 8 + 1 + 4 + 8 + 4 + 8.
  if (n_kv > c.remaining() / 14) {
    return c.error("metadata count", 16, std::to_string(n_kv) + " entries cannot fit in the file");
  }
  if (n_tensors > c.remaining() / 33) {
    return c.error("tensor count", 8, std::to_string(n_tensors) + " tensors cannot fit in the file");
  }

  kvs.resize(n_kv);
  kv_index.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKv& kv = kvs[k];
    kv.offset = c.pos();
    const std::string field = "metadata key #" + std::to_string(k);
    SN_RETURN_IF_ERROR(c.read_string(field, kMaxKeyLength, &kv.key));
    if (kv.key.empty()) return c.error(field, kv.offset, "empty key");
    const std::string vfield = "value of '" + std::string(kv.key) + "'";
    const uint64_t type_at = c.pos();
    uint32_t t = 0;
    SN_RETURN_IF_ERROR(c.read(vfield, &t));
    if (!is_known_type(t)) return c.error(vfield, type_at, "unknown value type " + std::to_string(t));
    SN_RETURN_IF_ERROR(parse_value(c, kv, static_cast<GgufType>(t), vfield));
    if (!kv_index.emplace(kv.key, k).second) {
      return c.error(field, kv.offset, "duplicate key '" + std::string(kv.key) + "'");
    }
  }

  if (auto it = kv_index.find("general.alignment"); it != kv_index.end()) {
    const GgufKv& kv = kvs[it->second];
    if (kv.type != GgufType::kUint32) {
      return c.error("general.alignment", kv.offset, std::string("type is ") + gguf_type_name(kv.type) + ", expected u32");
    }
    if (kv.u == 0 || (kv.u & (kv.u - 1)) != 0) {
      return c.error("general.alignment", kv.offset, std::to_string(kv.u) + " is not a power of two");
    }
    alignment = kv.u;
  }

  tensors.resize(n_tensors);
  tensor_index.reserve(n_tensors);
  for (uint64_t ti = 0; ti < n_tensors; ++ti) {
    GgufTensor& t = tensors[ti];
    const uint64_t at = c.pos();
    const std::string field = "tensor #" + std::to_string(ti);
    SN_RETURN_IF_ERROR(c.read_string(field + " name", kMaxNameLength, &t.name));
    if (t.name.empty()) return c.error(field + " name", at, "empty name");
    const std::string tf = "tensor '" + std::string(t.name) + "'";
    uint32_t n_dims = 0;
    const uint64_t dims_at = c.pos();
    SN_RETURN_IF_ERROR(c.read(tf + " rank", &n_dims));
    if (n_dims == 0 || n_dims > kMaxDims) {
      return c.error(tf + " rank", dims_at, "rank " + std::to_string(n_dims) + " (must be 1.." + std::to_string(kMaxDims) + ")");
    }
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = c.pos();
      int64_t dim = 0;
      SN_RETURN_IF_ERROR(c.read(tf + " dims", &dim));
      if (dim <= 0) return c.error(tf + " dims", dim_at, "dimension " + std::to_string(d) + " is " + std::to_string(dim));
      if (mul_overflows(n_elems, static_cast<uint64_t>(dim), &n_elems) ||
          n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.error(tf + " dims", dim_at, "element count overflows");
      }
      t.dims.push_back(dim);
    }
    uint32_t raw_type = 0;
    const uint64_t type_at = c.pos();
    SN_RETURN_IF_ERROR(c.read(tf + " type", &raw_type));
    std::optional<hal::DTypeInfo> info = hal::dtype_info(raw_type);
    if (!info) return c.error(tf + " type", type_at, "unknown tensor type " + std::to_string(raw_type));
    t.type = static_cast<hal::DType>(raw_type);
    if (t.dims[0] % info->block_elems != 0) {
      return c.error(tf + " dims", dims_at,
                     "row length " + std::to_string(t.dims[0]) + " is not a multiple of the " + info->name +
                         " block size " + std::to_string(info->block_elems));
    }
    const uint64_t n_rows = n_elems / static_cast<uint64_t>(t.dims[0]);
    const uint64_t row_bytes = static_cast<uint64_t>(t.dims[0]) / info->block_elems * info->block_bytes;
    if (mul_overflows(row_bytes, n_rows, &t.n_bytes)) return c.error(tf + " dims", dims_at, "byte size overflows");
    const uint64_t off_at = c.pos();
    SN_RETURN_IF_ERROR(c.read(tf + " offset", &t.offset));
    if (t.offset % alignment != 0) {
      return c.error(tf + " offset", off_at,
                     "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                         std::to_string(alignment));
    }
    if (!tensor_index.emplace(t.name, ti).second) {
      return c.error(field + " name", at, "duplicate tensor name '" + std::string(t.name) + "'");
    }
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t pad = (alignment - c.pos() % alignment) % alignment;
  if (add_overflows(c.pos(), pad, &data_offset)) return c.error("data section", c.pos(), "offset overflows");
  if (!tensors.empty() && data_offset > size) {
    return c.error("data section", c.pos(), "file ends before the tensor data starts");
  }

  // Every tensor lies inside the file, and no two overlap.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  uint64_t prev_end = 0;
  std::string_view prev_name;
  for (size_t idx : order) {
    GgufTensor& t = tensors[idx];
    uint64_t start = 0;
    uint64_t end = 0;
    if (add_overflows(data_offset, t.offset, &start) || add_overflows(start, t.n_bytes, &end) || end > size) {
      return Status::corruption(
          path, "tensor '" + std::string(t.name) + "' extends past end of file (data at " + std::to_string(start) +
                    ", " + std::to_string(t.n_bytes) + " bytes, file is " + std::to_string(size) + " bytes)");
    }
    if (t.offset < prev_end) {
      return Status::corruption(path, "tensor '" + std::string(t.name) + "' overlaps tensor '" +
                                          std::string(prev_name) + "' in the data section");
    }
    prev_end = t.offset + t.n_bytes;
    prev_name = t.name;
    t.data = base + start;
  }
  return Status::ok();
}

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

Result<GgufFile> GgufFile::open(const std::string& path, GgufOpenMode mode) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::not_found(path, "no such file");
    return Status::io_error(path, std::string("cannot open: ") + std::strerror(err));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::invalid_argument(path, "not a regular file");
  }
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size == 0) {
    ::close(fd);
    return Status::invalid_argument(path, "empty file (0 bytes), not a GGUF model");
  }
  // kPrivate reads the file into anonymous memory: Linux takes even copy-on-write pages of
  // a private file mapping away when the file is truncated (a later access is SIGBUS), so
  // only memory that never was the file's is safe from that.
  const bool private_copy = mode == GgufOpenMode::kPrivate;
  void* map = private_copy ? mmap(nullptr, impl->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                           : mmap(nullptr, impl->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  if (map != MAP_FAILED && private_copy) {
    uint8_t* dst = static_cast<uint8_t*>(map);
    for (uint64_t off = 0; off < impl->size;) {
      const ssize_t n = ::pread(fd, dst + off, static_cast<size_t>(std::min<uint64_t>(impl->size - off, 64u << 20)),
                                static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        munmap(map, impl->size);
        ::close(fd);
        return Status::io_error(path, std::string("reading the model into memory failed") +
                                          (n == 0 ? ": the file became shorter while read" : ": " + std::string(std::strerror(err))));
      }
      off += static_cast<uint64_t>(n);
    }
    (void)mprotect(map, impl->size, PROT_READ);
  }
  ::close(fd);
  if (map == MAP_FAILED) return Status::io_error(path, std::string("mmap failed: ") + std::strerror(err));
  impl->map = map;
  impl->base = static_cast<const uint8_t*>(map);
  SN_RETURN_IF_ERROR(impl->parse());
  return GgufFile(std::move(impl));
}

Result<GgufFile> GgufFile::from_bytes(std::string name, std::string_view bytes) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(name);
  impl->owned.assign(bytes);
  impl->size = impl->owned.size();
  impl->base = reinterpret_cast<const uint8_t*>(impl->owned.data());
  if (impl->size == 0) return Status::invalid_argument(impl->path, "empty file (0 bytes), not a GGUF model");
  SN_RETURN_IF_ERROR(impl->parse());
  return GgufFile(std::move(impl));
}

const std::string& GgufFile::path() const { return impl_->path; }
uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::file_size() const { return impl_->size; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
uint64_t GgufFile::data_offset() const { return impl_->data_offset; }
const std::vector<GgufKv>& GgufFile::kvs() const { return impl_->kvs; }
const std::vector<GgufTensor>& GgufFile::tensors() const { return impl_->tensors; }

const GgufKv* GgufFile::find(std::string_view key) const {
  auto it = impl_->kv_index.find(key);
  return it == impl_->kv_index.end() ? nullptr : &impl_->kvs[it->second];
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

namespace {

Status missing(const GgufFile& f, std::string_view key) {
  return Status::not_found(f.path(), "metadata key '" + std::string(key) + "' is missing");
}

Status wrong_type(const GgufFile& f, const GgufKv& kv, const char* expected) {
  return Status::invalid_argument(f.path(), "metadata key '" + std::string(kv.key) + "' has type " +
                                                gguf_type_name(kv.type) + ", expected " + expected);
}

}  // namespace

Result<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (kv == nullptr) return missing(*this, key);
  if (!is_integer(kv->type)) return wrong_type(*this, *kv, "an integer");
  if (kv->type == GgufType::kUint64 && kv->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::invalid_argument(path(), "metadata key '" + std::string(key) + "' value " + std::to_string(kv->u) +
                                                " is out of range");
  }
  return kv->i;
}

Result<double> GgufFile::get_float(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (kv == nullptr) return missing(*this, key);
  if (kv->type != GgufType::kFloat32 && kv->type != GgufType::kFloat64 && !is_integer(kv->type)) {
    return wrong_type(*this, *kv, "a number");
  }
  return kv->f;
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (kv == nullptr) return missing(*this, key);
  if (kv->type != GgufType::kBool) return wrong_type(*this, *kv, "bool");
  return kv->u != 0;
}

Result<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (kv == nullptr) return missing(*this, key);
  if (kv->type != GgufType::kString) return wrong_type(*this, *kv, "string");
  return kv->s;
}

Result<const GgufArray*> GgufFile::get_array(std::string_view key) const {
  const GgufKv* kv = find(key);
  if (kv == nullptr) return missing(*this, key);
  if (kv->type != GgufType::kArray) return wrong_type(*this, *kv, "array");
  return &kv->array;
}

Result<int64_t> GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  return find(key) == nullptr ? Result<int64_t>(fallback) : get_int(key);
}
Result<double> GgufFile::get_float_or(std::string_view key, double fallback) const {
  return find(key) == nullptr ? Result<double>(fallback) : get_float(key);
}
Result<bool> GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  return find(key) == nullptr ? Result<bool>(fallback) : get_bool(key);
}
Result<std::string_view> GgufFile::get_string_or(std::string_view key, std::string_view fallback) const {
  return find(key) == nullptr ? Result<std::string_view>(fallback) : get_string(key);
}

// ---- writer ----

namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

}  // namespace

void GgufWriter::add_u32(std::string key, uint32_t v) {
  std::string b;
  put(b, v);
  kvs_.push_back({std::move(key), GgufType::kUint32, std::move(b)});
}
void GgufWriter::add_i32(std::string key, int32_t v) {
  std::string b;
  put(b, v);
  kvs_.push_back({std::move(key), GgufType::kInt32, std::move(b)});
}
void GgufWriter::add_u64(std::string key, uint64_t v) {
  std::string b;
  put(b, v);
  kvs_.push_back({std::move(key), GgufType::kUint64, std::move(b)});
}
void GgufWriter::add_f32(std::string key, float v) {
  std::string b;
  put(b, v);
  kvs_.push_back({std::move(key), GgufType::kFloat32, std::move(b)});
}
void GgufWriter::add_bool(std::string key, bool v) {
  std::string b;
  put<uint8_t>(b, v ? 1 : 0);
  kvs_.push_back({std::move(key), GgufType::kBool, std::move(b)});
}
void GgufWriter::add_string(std::string key, std::string v) {
  std::string b;
  put_string(b, v);
  kvs_.push_back({std::move(key), GgufType::kString, std::move(b)});
}
void GgufWriter::add_string_array(std::string key, std::vector<std::string> v) {
  std::string b;
  put<uint32_t>(b, static_cast<uint32_t>(GgufType::kString));
  put<uint64_t>(b, v.size());
  for (const std::string& s : v) put_string(b, s);
  kvs_.push_back({std::move(key), GgufType::kArray, std::move(b)});
}
void GgufWriter::add_f32_array(std::string key, std::vector<float> v) {
  std::string b;
  put<uint32_t>(b, static_cast<uint32_t>(GgufType::kFloat32));
  put<uint64_t>(b, v.size());
  for (float x : v) put(b, x);
  kvs_.push_back({std::move(key), GgufType::kArray, std::move(b)});
}
void GgufWriter::add_i32_array(std::string key, std::vector<int32_t> v) {
  std::string b;
  put<uint32_t>(b, static_cast<uint32_t>(GgufType::kInt32));
  put<uint64_t>(b, v.size());
  for (int32_t x : v) put(b, x);
  kvs_.push_back({std::move(key), GgufType::kArray, std::move(b)});
}

void GgufWriter::add_kv_copy(const GgufKv& kv) {
  std::string b;
  switch (kv.type) {
    case GgufType::kString: put_string(b, std::string(kv.s)); break;
    case GgufType::kArray: {
      put<uint32_t>(b, static_cast<uint32_t>(kv.array.type()));
      put<uint64_t>(b, kv.array.size());
      if (kv.array.type() == GgufType::kString) {
        for (size_t i = 0; i < kv.array.size(); ++i) put_string(b, std::string(kv.array.str(i)));
      } else {
        b.append(reinterpret_cast<const char*>(kv.array.data_), kv.array.size() * scalar_size(kv.array.type()));
      }
      break;
    }
    case GgufType::kFloat32: put<float>(b, static_cast<float>(kv.f)); break;
    case GgufType::kFloat64: put<double>(b, kv.f); break;
    default: {
      const uint64_t n = scalar_size(kv.type);
      const uint64_t raw = is_signed(kv.type) ? static_cast<uint64_t>(kv.i) : kv.u;
      b.append(reinterpret_cast<const char*>(&raw), n);  // little-endian: the low n bytes
    }
  }
  kvs_.push_back({std::string(kv.key), kv.type, std::move(b)});
}

void GgufWriter::add_tensor(std::string name, std::vector<int64_t> dims, hal::DType type, std::string data) {
  SN_CHECK(!dims.empty() && dims.size() <= kMaxDims) << name;
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  std::optional<int64_t> row_bytes = hal::dtype_row_bytes(type, dims[0]);
  SN_CHECK(row_bytes.has_value() && static_cast<int64_t>(data.size()) == *row_bytes * rows)
      << "tensor " << name << ": " << data.size() << " bytes do not match its shape";
  tensors_.push_back({std::move(name), std::move(dims), type, std::move(data)});
}

std::string GgufWriter::serialize() const {
  std::string out;
  out += "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kvs_.size());
  for (const Kv& kv : kvs_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.type));
    out += kv.value;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<int64_t>(out, d);
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset += (t.data.size() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment;
  }
  if (!tensors_.empty()) {
    out.resize((out.size() + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment, '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      out.resize(data_start + offsets[i], '\0');
      out += tensors_[i].data;
    }
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  const std::string bytes = serialize();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::io_error(tmp, std::string("cannot create: ") + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return Status::io_error(tmp, "write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::io_error(path, std::string("cannot rename from ") + tmp + ": " + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace sn::engine
