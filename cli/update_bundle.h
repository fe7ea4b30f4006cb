// Signed offline update bundles (cli/UPDATE_BUNDLE.md is the format's specification): one
// POSIX ustar file holding manifest.json, manifest.sig (an Ed25519 signature of the
// manifest's exact bytes) and the payload files the manifest lists with size and sha256.
// `supernode update make` writes them (make_bundle), `update verify` and `update apply`
// read them (read_bundle) in one streaming pass with bounded memory. OpenSSL and libarchive
// stay inside update_bundle.cpp.
// Thread safety: free functions and value types; safe concurrently on distinct files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "supernode/base/status.h"

namespace sn::cli {

inline constexpr int kBundleFormat = 1;
inline constexpr const char* kBundleProduct = "supernode";
inline constexpr size_t kManifestMaxBytes = 64 << 10;
inline constexpr size_t kSignatureMaxBytes = 4 << 10;
inline constexpr size_t kBundleMaxPayloads = 64;

struct BundlePayload {
  std::string name;    // a plain file name: [A-Za-z0-9][A-Za-z0-9._+~-]*, at most 100 bytes
  uint64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
};

struct BundleManifest {
  int format = kBundleFormat;
  std::string product = kBundleProduct;
  std::string version;      // the Debian version the bundle installs
  std::string min_version;  // the oldest installed version it may upgrade
  std::string created;      // RFC 3339, UTC
  std::vector<BundlePayload> files;
};

// A trusted Ed25519 public key read from a PEM file.
struct TrustedKey {
  std::string file;
  std::string key_id;  // sha256 of the raw 32-byte public key, hex
  std::string raw;     // the 32 raw bytes
};

// Every *.pem in `dirs` (missing directories are skipped; files that are not Ed25519
// public keys are reported in `warnings` and skipped). Errors: not_found when no key at all.
[[nodiscard]] Result<std::vector<TrustedKey>> load_trusted_keys(const std::vector<std::string>& dirs,
                                                                std::vector<std::string>* warnings);

// The manifest as JSON text (what is signed) and back. parse_manifest checks every field:
// format, product, version strings, names, sizes, hex digests, duplicates, and that one
// payload is the main package supernode_<version>_<arch>.deb.
[[nodiscard]] std::string manifest_json(const BundleManifest& m);
[[nodiscard]] Result<BundleManifest> parse_manifest(const std::string& text);
[[nodiscard]] Status check_manifest(const BundleManifest& m);
// The main package's payload name (supernode_<version>_<arch>.deb); "" when none.
[[nodiscard]] std::string main_package(const BundleManifest& m);

// What a successful read found.
struct VerifiedBundle {
  BundleManifest manifest;
  std::string manifest_bytes;  // exactly what was signed
  TrustedKey signer;
};

// Reads the bundle at `path` in one pass: manifest.json, manifest.sig (checked against every
// key before the manifest is parsed), then each payload, hashed as it streams. When
// `extract_dir` is given each payload is also written there (O_EXCL, mode 0600); files of a
// failed read are left for the caller to remove. Errors say which check failed:
// "truncated bundle", "bad signature", "signed by an unknown key", "tampered file X (sha256
// mismatch)", "size mismatch", "extra file", "missing payload", "duplicate file", ...
[[nodiscard]] Result<VerifiedBundle> read_bundle(const std::string& path, const std::vector<TrustedKey>& keys,
                                                 const std::string& extract_dir = {});

// sha256 of a file, streamed; hex.
[[nodiscard]] Result<std::string> sha256_file(const std::string& path);

// Writes a signed bundle of `payload_paths` (each stored under its file name) to `out`
// (through OUT.part, renamed when complete). `private_key_pem`: an Ed25519 private key file.
// Fills `manifest->files`, `created` (now, when empty) and returns the signer's key id.
[[nodiscard]] Result<std::string> make_bundle(const std::string& private_key_pem, BundleManifest* manifest,
                                              const std::vector<std::string>& payload_paths, const std::string& out);

// The current UTC time as RFC 3339 ("2026-12-05T09:30:00Z").
[[nodiscard]] std::string now_rfc3339();

// Whether `v` looks like a Debian version ([epoch:]upstream[-revision], no spaces).
[[nodiscard]] bool valid_version(const std::string& v);
// A version without its epoch ("1:0.2.0-1" -> "0.2.0-1"): as dpkg names .deb files.
[[nodiscard]] std::string version_without_epoch(const std::string& v);

}  // namespace sn::cli
