// Signed update bundles: reading (one streaming pass, bounded memory), writing and signing.
// See update_bundle.h for the contract and cli/UPDATE_BUNDLE.md for the format.
#include "update_bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

namespace sn::cli {
namespace {

using json = nlohmann::json;
constexpr size_t kChunk = 64 << 10;
constexpr uint64_t kPayloadMaxBytes = (uint64_t{8} << 30) - 1;  // ustar's size field
constexpr const char* kManifestName = "manifest.json";
constexpr const char* kSignatureName = "manifest.sig";

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[p[i] >> 4];
    s[2 * i + 1] = kDigits[p[i] & 15];
  }
  return s;
}

bool unhex(const std::string& h, std::string* out) {
  if (h.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    int v = 0;
    for (size_t j = i; j < i + 2; ++j) {
      const char c = h[j];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { ok_ = ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1; }
  void update(const void* p, size_t n) { ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), p, n) == 1; }
  // "" when OpenSSL failed.
  std::string hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), md, &n) != 1) return "";
    return hex(md, n);
  }

 private:
  MdCtxPtr ctx_;
  bool ok_ = false;
};

std::string key_id_of(const std::string& raw) {
  Sha256 h;
  h.update(raw.data(), raw.size());
  return h.hex_digest();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 100 || n == kManifestName || n == kSignatureName) return false;
  if (!std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  if (n.find("..") != std::string::npos) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '~' || c == '-';
  });
}

bool verify_signature(const TrustedKey& key, const std::string& data, const std::string& sig) {
  PkeyPtr pk(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.raw.data()),
                                         key.raw.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!pk || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pk.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

// The archive's error, as a check: libarchive reports a short file as "Truncated ...".
Status archive_status(archive* a, const std::string& path, const std::string& where) {
  const char* e = archive_error_string(a);
  const std::string why = e != nullptr ? e : "unreadable archive";
  std::string lower = why;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.find("truncated") != std::string::npos || lower.find("premature") != std::string::npos) {
    return Status::corruption(path, "truncated bundle (" + where + ": " + why + ")");
  }
  return Status::corruption(path, "not a readable bundle (" + where + ": " + why + ")");
}

// Reads a small entry whole (its size checked against `max` first).
Status read_small(archive* a, archive_entry* e, size_t max, const std::string& path, const char* name, std::string* out) {
  const la_int64_t size = archive_entry_size(e);
  if (size < 0 || static_cast<uint64_t>(size) > max) {
    return Status::corruption(path, std::string("oversized ") + name + " (" + std::to_string(size) + " bytes, at most " +
                                        std::to_string(max) + ")");
  }
  out->assign(static_cast<size_t>(size), '\0');
  size_t got = 0;
  while (got < out->size()) {
    const la_ssize_t n = archive_read_data(a, out->data() + got, out->size() - got);
    if (n < 0) return archive_status(a, path, name);
    if (n == 0) return Status::corruption(path, std::string("truncated bundle (") + name + " ends early)");
    got += static_cast<size_t>(n);
  }
  return Status::ok();
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status write_all(int fd, const char* p, size_t n, const std::string& what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::io_error(what, std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace

std::string now_rfc3339() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}


bool valid_version(const std::string& v) {
  if (v.empty() || v.size() > 64 || !std::isdigit(static_cast<unsigned char>(v[0]))) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '~' || c == ':' || c == '-';
  });
}

std::string version_without_epoch(const std::string& v) {
  const size_t colon = v.find(':');
  return colon == std::string::npos ? v : v.substr(colon + 1);
}

Result<std::vector<TrustedKey>> load_trusted_keys(const std::vector<std::string>& dirs, std::vector<std::string>* warnings) {
  std::vector<TrustedKey> keys;
  std::set<std::string> seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::string> files;
    for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
      if (de.path().extension() == ".pem" && de.is_regular_file(ec)) files.push_back(de.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
      std::unique_ptr<FILE, FileClose> fp(std::fopen(f.c_str(), "rb"));
      PkeyPtr pk(fp ? PEM_read_PUBKEY(fp.get(), nullptr, nullptr, nullptr) : nullptr);
      unsigned char raw[32];
      size_t n = sizeof raw;
      if (!pk || EVP_PKEY_get_id(pk.get()) != EVP_PKEY_ED25519 || EVP_PKEY_get_raw_public_key(pk.get(), raw, &n) != 1 ||
          n != sizeof raw) {
        if (warnings) warnings->push_back(f + ": not an Ed25519 public key in PEM (skipped)");
        continue;
      }
      TrustedKey k{f, "", std::string(reinterpret_cast<char*>(raw), n)};
      k.key_id = key_id_of(k.raw);
      if (seen.insert(k.key_id).second) keys.push_back(std::move(k));
    }
  }
  if (keys.empty()) {
    std::string list;
    for (const std::string& d : dirs) list += (list.empty() ? "" : ", ") + d;
    return Status::not_found("trusted keys", "no Ed25519 public key (*.pem) in " + (list.empty() ? "no directory" : list));
  }
  return keys;
}

std::string manifest_json(const BundleManifest& m) {
  json files = json::array();
  for (const BundlePayload& p : m.files) files.push_back({{"name", p.name}, {"size", p.size}, {"sha256", p.sha256}});
  const json j = {{"format", m.format},   {"product", m.product}, {"version", m.version},
                  {"min_version", m.min_version}, {"created", m.created}, {"files", files}};
  return j.dump(2) + "\n";
}

std::string main_package(const BundleManifest& m) {
  const std::string prefix = "supernode_" + version_without_epoch(m.version) + "_";
  for (const BundlePayload& p : m.files) {
    if (p.name.size() > prefix.size() + 4 && p.name.rfind(prefix, 0) == 0 && p.name.ends_with(".deb") &&
        p.name.find('_', prefix.size()) == std::string::npos) {
      return p.name;
    }
  }
  return "";
}

Status check_manifest(const BundleManifest& m) {
  const char* ctx = "manifest";
  if (m.format != kBundleFormat) {
    return Status::not_supported(ctx, "format " + std::to_string(m.format) + " (this tool reads format " +
                                          std::to_string(kBundleFormat) + ")");
  }
  if (m.product != kBundleProduct) return Status::invalid_argument(ctx, "product '" + m.product + "' is not supernode");
  if (!valid_version(m.version)) return Status::invalid_argument(ctx, "version '" + m.version + "' is not a Debian version");
  if (!valid_version(m.min_version)) {
    return Status::invalid_argument(ctx, "min_version '" + m.min_version + "' is not a Debian version");
  }
  if (m.created.empty() || m.created.size() > 40) return Status::invalid_argument(ctx, "created time missing");
  if (m.files.empty()) return Status::invalid_argument(ctx, "no payload files");
  if (m.files.size() > kBundleMaxPayloads) {
    return Status::invalid_argument(ctx, std::to_string(m.files.size()) + " payload files (at most " +
                                             std::to_string(kBundleMaxPayloads) + ")");
  }
  std::set<std::string> names;
  for (const BundlePayload& p : m.files) {
    if (!valid_name(p.name)) {
      return Status::invalid_argument(ctx, "unsafe payload name '" + p.name + "' (a plain file name: no '/', no '..')");
    }
    if (!names.insert(p.name).second) return Status::invalid_argument(ctx, "duplicate payload entry " + p.name);
    if (p.size > kPayloadMaxBytes) return Status::invalid_argument(ctx, "payload " + p.name + " is larger than 8 GiB");
    if (!is_hex64(p.sha256)) return Status::invalid_argument(ctx, "payload " + p.name + ": sha256 is not 64 hex digits");
  }
  if (main_package(m).empty()) {
    return Status::invalid_argument(ctx, "no payload named supernode_" + version_without_epoch(m.version) +
                                             "_<arch>.deb (the package of the bundle's version)");
  }
  return Status::ok();
}

Result<BundleManifest> parse_manifest(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  const char* ctx = "manifest";
  if (j.is_discarded() || !j.is_object()) return Status::corruption(ctx, "not a JSON object");
  BundleManifest m;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "format" && v.is_number_integer()) {
      m.format = v.get<int>();
    } else if ((k == "product" || k == "version" || k == "min_version" || k == "created") && v.is_string()) {
      (k == "product" ? m.product : k == "version" ? m.version : k == "min_version" ? m.min_version : m.created) =
          v.get<std::string>();
    } else if (k == "files" && v.is_array() && v.size() <= kBundleMaxPayloads) {
      for (const json& f : v) {
        if (!f.is_object() || f.size() != 3 || !f.contains("name") || !f["name"].is_string() || !f.contains("size") ||
            !f["size"].is_number_unsigned() || !f.contains("sha256") || !f["sha256"].is_string()) {
          return Status::corruption(ctx, "a files[] entry is not {name, size, sha256}");
        }
        m.files.push_back({f["name"].get<std::string>(), f["size"].get<uint64_t>(), f["sha256"].get<std::string>()});
      }
    } else {
      return Status::corruption(ctx, "unknown or mistyped field '" + k + "'");
    }
  }
  for (const char* k : {"format", "product", "version", "min_version", "created", "files"}) {
    if (!j.contains(k)) return Status::corruption(ctx, std::string("missing field '") + k + "'");
  }
  if (Status s = check_manifest(m); !s.is_ok()) return s;
  return m;
}

Result<std::string> sha256_file(const std::string& path) {
  Fd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return Status::io_error(path, std::strerror(errno));
  Sha256 h;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    const ssize_t n = ::read(in.fd, buf.get(), kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::io_error(path, std::strerror(errno));
    if (n == 0) break;
    h.update(buf.get(), static_cast<size_t>(n));
  }
  std::string d = h.hex_digest();
  if (d.empty()) return Status::internal(path, "sha256 failed (OpenSSL)");
  return d;
}

Result<VerifiedBundle> read_bundle(const std::string& path, const std::vector<TrustedKey>& keys,
                                   const std::string& extract_dir) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  if (!a) return Status::internal(path, "libarchive: out of memory");
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), kChunk) != ARCHIVE_OK) {
    const char* e = archive_error_string(a.get());
    return Status::io_error(path, e != nullptr ? e : "cannot open");
  }
  VerifiedBundle out;
  std::string sig_text;
  std::map<std::string, const BundlePayload*> expected;
  std::set<std::string> seen;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (int index = 0;; ++index) {
    archive_entry* e = nullptr;
    const int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) {
      if (index < 2) return Status::corruption(path, "truncated bundle (no manifest and signature)");
      break;
    }
    if (rc != ARCHIVE_OK) return archive_status(a.get(), path, "entry " + std::to_string(index + 1));
    const char* pn = archive_entry_pathname(e);
    const std::string name = pn != nullptr ? pn : "";
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos || name.empty()) {
      return Status::corruption(path, "unsafe path name '" + name + "' in the bundle (no '/' or '..' allowed)");
    }
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != nullptr || !archive_entry_size_is_set(e)) {
      return Status::corruption(path, "entry " + name + " is not a regular file");
    }
    if (index == 0 || index == 1) {
      const char* want = index == 0 ? kManifestName : kSignatureName;
      if (name != want) {
        return Status::corruption(path, "not an update bundle: entry " + std::to_string(index + 1) + " is '" + name +
                                            "', expected " + want);
      }
      if (Status s = read_small(a.get(), e, index == 0 ? kManifestMaxBytes : kSignatureMaxBytes, path, want,
                                index == 0 ? &out.manifest_bytes : &sig_text);
          !s.is_ok()) {
        return s;
      }
      if (index == 0) continue;
      // The signature, checked before the manifest is parsed: nothing unauthenticated is read.
      const json sj = json::parse(sig_text, nullptr, false);
      std::string sig, claimed;
      if (sj.is_discarded() || !sj.is_object() || sj.value("algorithm", "") != "ed25519" || !sj.contains("signature") ||
          !sj["signature"].is_string() || !unhex(sj["signature"].get<std::string>(), &sig) || sig.size() != 64) {
        return Status::corruption(path, "bad signature (manifest.sig is not an Ed25519 signature record)");
      }
      if (sj.contains("key_id") && sj["key_id"].is_string()) claimed = sj["key_id"].get<std::string>();
      const TrustedKey* signer = nullptr;
      for (const TrustedKey& k : keys) {
        if (verify_signature(k, out.manifest_bytes, sig)) {
          signer = &k;
          break;
        }
      }
      if (signer == nullptr) {
        const bool known = std::any_of(keys.begin(), keys.end(), [&](const TrustedKey& k) { return k.key_id == claimed; });
        if (known) return Status::corruption(path, "bad signature (the manifest or its signature was altered; key " + claimed + ")");
        return Status::permission_denied(path, "signed by an unknown key (key id " + (claimed.empty() ? "?" : claimed) +
                                                   "; trusted: " + std::to_string(keys.size()) + " keys)");
      }
      out.signer = *signer;
      Result<BundleManifest> m = parse_manifest(out.manifest_bytes);
      if (!m.ok()) return m.status().with_context(path);
      out.manifest = std::move(*m);
      for (const BundlePayload& p : out.manifest.files) expected[p.name] = &p;
      continue;
    }
    const auto it = expected.find(name);
    if (it == expected.end()) {
      return Status::corruption(path, name == kManifestName || name == kSignatureName
                                          ? "duplicate file " + name + " in the bundle"
                                          : "extra file " + name + " (not in the signed manifest)");
    }
    if (!seen.insert(name).second) return Status::corruption(path, "duplicate file " + name + " in the bundle");
    const BundlePayload& want = *it->second;
    const uint64_t size = static_cast<uint64_t>(archive_entry_size(e));
    if (size != want.size) {
      return Status::corruption(path, "size mismatch for " + name + ": manifest " + std::to_string(want.size) +
                                          " bytes, bundle " + std::to_string(size));
    }
    Fd dst;
    const std::string dst_path = extract_dir.empty() ? "" : extract_dir + "/" + name;
    if (!dst_path.empty()) {
      dst.fd = ::open(dst_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (dst.fd < 0) return Status::io_error(dst_path, std::strerror(errno));
    }
    Sha256 h;
    uint64_t got = 0;
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buf.get(), kChunk);
      if (n < 0) return archive_status(a.get(), path, name);
      if (n == 0) break;
      got += static_cast<uint64_t>(n);
      h.update(buf.get(), static_cast<size_t>(n));
      if (dst.fd >= 0) {
        if (Status s = write_all(dst.fd, buf.get(), static_cast<size_t>(n), dst_path); !s.is_ok()) return s;
      }
    }
    if (got != want.size) {
      return Status::corruption(path, "truncated bundle (" + name + ": " + std::to_string(got) + " of " +
                                          std::to_string(want.size) + " bytes)");
    }
    if (h.hex_digest() != want.sha256) return Status::corruption(path, "tampered file " + name + " (sha256 mismatch)");
    if (dst.fd >= 0 && ::fsync(dst.fd) != 0) return Status::io_error(dst_path, std::strerror(errno));
  }
  for (const BundlePayload& p : out.manifest.files) {
    if (!seen.contains(p.name)) {
      return Status::corruption(path, "missing payload " + p.name + " (in the signed manifest, not in the bundle: "
                                      "truncated bundle?)");
    }
  }
  return out;
}

Result<std::string> make_bundle(const std::string& private_key_pem, BundleManifest* manifest,
                                const std::vector<std::string>& payload_paths, const std::string& out) {
  std::unique_ptr<FILE, FileClose> kf(std::fopen(private_key_pem.c_str(), "rb"));
  if (!kf) return Status::io_error(private_key_pem, std::strerror(errno));
  PkeyPtr key(PEM_read_PrivateKey(kf.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    return Status::invalid_argument(private_key_pem, "not an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)");
  }
  unsigned char raw[32];
  size_t raw_n = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key.get(), raw, &raw_n) != 1) return Status::internal(private_key_pem, "no public half");
  const std::string key_id = key_id_of(std::string(reinterpret_cast<char*>(raw), raw_n));

  manifest->files.clear();
  for (const std::string& p : payload_paths) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(p, ec);
    if (ec) return Status::io_error(p, ec.message());
    Result<std::string> d = sha256_file(p);
    if (!d.ok()) return d.status();
    manifest->files.push_back({std::filesystem::path(p).filename().string(), size, *d});
  }
  if (manifest->created.empty()) manifest->created = now_rfc3339();
  if (Status s = check_manifest(*manifest); !s.is_ok()) return s;
  const std::string text = manifest_json(*manifest);

  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t sig_n = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_n, reinterpret_cast<const unsigned char*>(text.data()), text.size()) != 1) {
    return Status::internal(private_key_pem, "Ed25519 signing failed");
  }
  const std::string sig_text =
      json{{"algorithm", "ed25519"}, {"key_id", key_id}, {"signature", hex(sig, sig_n)}}.dump(2) + "\n";

  const std::string part = out + ".part";
  std::unique_ptr<archive, ArchiveWriteFree> a(archive_write_new());
  if (!a || archive_write_set_format_ustar(a.get()) != ARCHIVE_OK || archive_write_add_filter_none(a.get()) != ARCHIVE_OK ||
      archive_write_open_filename(a.get(), part.c_str()) != ARCHIVE_OK) {
    return Status::io_error(part, a ? archive_error_string(a.get()) : "libarchive: out of memory");
  }
  const std::time_t now = std::time(nullptr);
  auto header = [&](const std::string& name, uint64_t size) -> Status {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_uname(e.get(), "root");
    archive_entry_set_gname(e.get(), "root");
    archive_entry_set_mtime(e.get(), now, 0);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) return Status::io_error(part, archive_error_string(a.get()));
    return Status::ok();
  };
  auto fail = [&](Status s) {
    a.reset();
    std::error_code ec;
    std::filesystem::remove(part, ec);
    return s;
  };
  for (const auto& [name, data] : {std::pair{kManifestName, &text}, std::pair{kSignatureName, &sig_text}}) {
    if (Status s = header(name, data->size()); !s.is_ok()) return fail(s);
    if (archive_write_data(a.get(), data->data(), data->size()) != static_cast<la_ssize_t>(data->size())) {
      return fail(Status::io_error(part, archive_error_string(a.get())));
    }
  }
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (size_t i = 0; i < payload_paths.size(); ++i) {
    const BundlePayload& p = manifest->files[i];
    if (Status s = header(p.name, p.size); !s.is_ok()) return fail(s);
    Fd in{::open(payload_paths[i].c_str(), O_RDONLY | O_CLOEXEC)};
    if (in.fd < 0) return fail(Status::io_error(payload_paths[i], std::strerror(errno)));
    Sha256 h;
    uint64_t got = 0;
    for (;;) {
      const ssize_t n = ::read(in.fd, buf.get(), kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(Status::io_error(payload_paths[i], std::strerror(errno)));
      if (n == 0) break;
      got += static_cast<uint64_t>(n);
      h.update(buf.get(), static_cast<size_t>(n));
      if (got > p.size || archive_write_data(a.get(), buf.get(), static_cast<size_t>(n)) != n) break;
    }
    // The file must not change between hashing and writing.
    if (got != p.size || h.hex_digest() != p.sha256) {
      return fail(Status::io_error(payload_paths[i], "changed while the bundle was written"));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail(Status::io_error(part, archive_error_string(a.get())));
  a.reset();
  std::error_code ec;
  std::filesystem::rename(part, out, ec);
  if (ec) return fail(Status::io_error(out, ec.message()));
  return key_id;
}

}  // namespace sn::cli
