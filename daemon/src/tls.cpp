// Self-signed certificate generation with OpenSSL 3's EVP and X509 APIs (tls.h).
#include "supernode/daemon/tls.h"

#include "supernode/base/secret_file.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace sn::daemon {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};

bool add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

}  // namespace

Status ensure_self_signed_certificate(const std::string& cert_path, const std::string& key_path) {
  if (std::filesystem::exists(cert_path) && std::filesystem::exists(key_path)) return Status::ok();
  const char* what = "self-signed certificate";
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  if (!key) return Status::internal(what, "cannot generate an EC key");
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) return Status::internal(what, "X509_new failed");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return Status::internal(what, "no randomness for the serial");
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("supernode"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Supernode appliance"), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  bool host_ok = host[0] != '\0';
  for (const char* c = host; *c != '\0'; ++c) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.')) {
      host_ok = false;
    }
  }
  if (host_ok) san += std::string(",DNS:") + host;
  if (!add_ext(cert.get(), NID_subject_alt_name, san.c_str()) ||
      !add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert.get(), NID_ext_key_usage, "serverAuth")) {
    return Status::internal(what, "cannot add the certificate's extensions");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return Status::internal(what, "signing failed");

  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(cert_path).parent_path(), ec);
  std::filesystem::create_directories(std::filesystem::path(key_path).parent_path(), ec);
  {
    // The key goes through memory to a file that is 0600 from its first byte.
    std::unique_ptr<BIO, decltype(&BIO_free)> mem(BIO_new(BIO_s_mem()), &BIO_free);
    if (!mem || PEM_write_bio_PrivateKey(mem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return Status::internal(key_path, "cannot encode the TLS key");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(mem.get(), &data);
    Status w = write_secret_file(key_path, std::string_view(data, static_cast<size_t>(len)));
    OPENSSL_cleanse(data, static_cast<size_t>(len));
    SN_RETURN_IF_ERROR(w);
  }
  std::unique_ptr<FILE, FileClose> cf(std::fopen(cert_path.c_str(), "w"));
  if (!cf || PEM_write_X509(cf.get(), cert.get()) != 1) return Status::io_error(cert_path, "cannot write the certificate");
  return Status::ok();
}

}  // namespace sn::daemon
