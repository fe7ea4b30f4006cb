// `supernode update verify|apply|make` end to end: the real binary against bundles it made
// and bundles crafted here (signed with keys generated here, written with libarchive), and
// `apply` against a fake system: dpkg, dpkg-query, dpkg-repack and systemctl are shell
// scripts first on PATH that record every call in FAKE_DIR/log and keep the "installed"
// version in FAKE_DIR/installed; a version listed in FAKE_DIR/broken never comes up. The
// daemon's admin socket is a fake too (a thread answering {"ok":true} and recording each
// request), or absent (daemon down: audit records go to WORK/audit-pending.jsonl).
// Thread safety: test thread, plus the fake admin socket's own thread.
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../daemon/daemon_harness.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

namespace {

namespace fs = std::filesystem;
using sn::testing::read_file;
using sn::testing::TempDir;
using sn::testing::write_file;

struct Run {
  int code = -1;
  std::string out;  // stdout and stderr
};

Run sh(const std::string& cmd) {
  Run r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

std::string hex(const unsigned char* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

std::string sha256(const std::string& data) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return hex(md, n);
}

// An Ed25519 pair: NAME.key (private, PEM) in `dir`, NAME.pem (public) in `pub_dir`.
std::string make_key(const std::string& dir, const std::string& pub_dir, const std::string& name) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  CHECK(k != nullptr);
  const std::string priv = dir + "/" + name + ".key";
  FILE* f = std::fopen(priv.c_str(), "wb");
  CHECK(f != nullptr && PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  std::fclose(f);
  fs::create_directories(pub_dir);
  f = std::fopen((pub_dir + "/" + name + ".pem").c_str(), "wb");
  CHECK(f != nullptr && PEM_write_PUBKEY(f, k) == 1);
  std::fclose(f);
  EVP_PKEY_free(k);
  return priv;
}

// manifest.sig for `manifest`, signed with the private key file `priv`.
std::string sign(const std::string& priv, const std::string& manifest) {
  FILE* f = std::fopen(priv.c_str(), "rb");
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  unsigned char raw[32], sig[64];
  size_t raw_n = sizeof raw, sig_n = sizeof sig;
  EVP_PKEY_get_raw_public_key(k, raw, &raw_n);
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  CHECK(EVP_DigestSignInit(c, nullptr, nullptr, nullptr, k) == 1);
  CHECK(EVP_DigestSign(c, sig, &sig_n, reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) == 1);
  EVP_MD_CTX_free(c);
  EVP_PKEY_free(k);
  unsigned char id[32];
  unsigned int id_n = 0;
  EVP_Digest(raw, raw_n, id, &id_n, EVP_sha256(), nullptr);
  return R"({"algorithm": "ed25519", "key_id": ")" + hex(id, id_n) + R"(", "signature": ")" + hex(sig, sig_n) + "\"}\n";
}

// A ustar file of (name, data) entries, in order.
void write_tar(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries) {
  archive* a = archive_write_new();
  archive_write_set_format_ustar(a);
  CHECK(archive_write_open_filename(a, path.c_str()) == ARCHIVE_OK);
  for (const auto& [name, data] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    CHECK(archive_write_header(a, e) == ARCHIVE_OK);
    CHECK(archive_write_data(a, data.data(), data.size()) == static_cast<la_ssize_t>(data.size()));
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

struct Payload {
  std::string name, data;
};

std::string manifest_text(const std::string& version, const std::string& min_version, const std::vector<Payload>& files,
                          const std::string& extra_entry = "") {
  std::string s = R"({"format": 1, "product": "supernode", "version": ")" + version + R"(", "min_version": ")" +
                  min_version + R"(", "created": "2025-01-01T00:00:00Z", "files": [)";
  for (size_t i = 0; i < files.size(); ++i) {
    s += (i ? ", " : "") + std::string(R"({"name": ")") + files[i].name + R"(", "size": )" +
         std::to_string(files[i].data.size()) + R"(, "sha256": ")" + sha256(files[i].data) + "\"}";
  }
  return s + extra_entry + "]}\n";
}

// Replaces the first occurrence of `from` in the file with `to` (same length: the tar stays well-formed).
void patch_file(const std::string& path, const std::string& from, const std::string& to) {
  std::string b = read_file(path);
  const size_t at = b.find(from);
  CHECK_TEXT(at != std::string::npos, from.c_str());
  CHECK(from.size() == to.size());
  b.replace(at, from.size(), to);
  write_file(path, b);
}

// A fake package payload: any bytes (dpkg is fake), recognisable for patching.
std::string deb_bytes(const std::string& version) {
  std::string s;
  for (int i = 0; i < 2000; ++i) s += "fake supernode " + version + " package block " + std::to_string(i) + "\n";
  return s;
}

// The admin socket of a daemon that takes every request: answers {"ok":true} and keeps the lines.
class FakeAdminSocket {
 public:
  explicit FakeAdminSocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    CHECK(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeAdminSocket() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string all() {
    std::string s;
    for (const std::string& r : requests()) s += r + "\n";
    return s;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string line;
      char buf[4096];
      ssize_t n;
      while (line.find('\n') == std::string::npos && (n = ::recv(c, buf, sizeof buf, 0)) > 0) line.append(buf, static_cast<size_t>(n));
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(line.substr(0, line.find('\n')));
      }
      const std::string ok = "{\"ok\":true}\n";
      (void)::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

const char* kFakeDpkg = R"SH(#!/bin/sh
echo "dpkg $*" >> "$FAKE_DIR/log"
case "$1" in
  --compare-versions)
    if [ "$2" = "$4" ]; then c=0
    elif [ "$(printf '%s\n%s\n' "$2" "$4" | sort -V | head -n 1)" = "$2" ]; then c=-1
    else c=1; fi
    case "$3" in
      lt) [ $c -lt 0 ] ;; le) [ $c -le 0 ] ;; eq) [ $c -eq 0 ] ;; ge) [ $c -ge 0 ] ;; gt) [ $c -gt 0 ] ;; *) exit 2 ;;
    esac
    exit $? ;;
  -i)
    shift
    for f in "$@"; do
      [ -f "$f" ] || { echo "dpkg: cannot access archive '$f'"; exit 2; }
      b=$(basename "$f")
      case "$b" in supernode_*) v=${b#supernode_}; echo "${v%%_*}" > "$FAKE_DIR/installed" ;; esac
    done
    # The package's postinst restarts the service.
    n=$(cat "$FAKE_DIR/started" 2>/dev/null || echo 100); echo $((n + 1)) > "$FAKE_DIR/started"
    exit 0 ;;
esac
exit 2
)SH";

const char* kFakeDpkgQuery = R"SH(#!/bin/sh
echo "dpkg-query $*" >> "$FAKE_DIR/log"
[ -s "$FAKE_DIR/installed" ] || { echo "dpkg-query: no packages found matching supernode" >&2; exit 1; }
printf '%s' "$(cat "$FAKE_DIR/installed")"
)SH";

const char* kFakeDpkgRepack = R"SH(#!/bin/sh
echo "dpkg-repack $* (in $PWD)" >> "$FAKE_DIR/log"
echo "repacked" > "supernode_$(cat "$FAKE_DIR/installed")_amd64.deb"
)SH";

const char* kFakeSystemctl = R"SH(#!/bin/sh
echo "systemctl $*" >> "$FAKE_DIR/log"
case "$1" in
  show)
    v=$(cat "$FAKE_DIR/installed" 2>/dev/null)
    if grep -qx "$v" "$FAKE_DIR/broken" 2>/dev/null; then
      echo ActiveState=activating; echo SubState=auto-restart
    else
      echo ActiveState=active; echo SubState=running
    fi
    echo "ExecMainStartTimestampMonotonic=$(cat "$FAKE_DIR/started" 2>/dev/null || echo 100)" ;;
  restart)
    n=$(cat "$FAKE_DIR/started" 2>/dev/null || echo 100); echo $((n + 1)) > "$FAKE_DIR/started" ;;
esac
exit 0
)SH";

// A box with supernode `installed` and the fake tools, keys and directories of one test.
struct Box {
  TempDir dir;
  std::string fake = dir.file("fake");
  std::string bin = dir.file("fakebin");
  std::string keys = dir.file("keys");
  std::string work = dir.file("work");
  std::string state = dir.file("state");
  std::string socket = dir.file("admin.sock");
  std::string vendor_key;

  explicit Box(const std::string& installed) {
    fs::create_directories(fake);
    fs::create_directories(bin);
    fs::create_directories(state);
    for (const auto& [name, text] : {std::pair{"dpkg", kFakeDpkg}, std::pair{"dpkg-query", kFakeDpkgQuery},
                                     std::pair{"dpkg-repack", kFakeDpkgRepack}, std::pair{"systemctl", kFakeSystemctl}}) {
      write_file(bin + "/" + name, text);
      ::chmod((bin + "/" + name).c_str(), 0755);
    }
    if (!installed.empty()) write_file(fake + "/installed", installed + "\n");
    write_file(fake + "/log", "");
    vendor_key = make_key(dir.path(), keys, "vendor");
  }

  std::string env() const {
    return "FAKE_DIR=" + fake + " PATH=" + bin + ":\"$PATH\" SUPERNODE_UPDATE_ALLOW_NON_ROOT=1 ";
  }
  Run supernode(const std::string& args) const {
    return sh(env() + sn::testing::bin_dir() + "/supernode " + args);
  }
  Run verify(const std::string& bundle) const { return supernode("update verify --keys-dir " + keys + " " + bundle); }
  Run apply(const std::string& bundle, const std::string& more = "") const {
    return supernode("update apply --keys-dir " + keys + " --work-dir " + work + " --state-dir " + state +
                     " --admin-socket " + socket + " --ready-timeout 1 " + more + " " + bundle);
  }
  // A bundle made by `supernode update make`.
  std::string make(const std::string& version, const std::string& min_version, const std::string& key = "") const {
    const std::string deb = dir.file("supernode_" + version + "_amd64.deb");
    write_file(deb, deb_bytes(version));
    const std::string out = dir.file("update-" + version + ".snupdate");
    Run r = supernode("update make --key " + (key.empty() ? vendor_key : key) + " --version " + version +
                      " --min-version " + min_version + " -o " + out + " " + deb);
    LONGS_EQUAL_TEXT(0, r.code, r.out.c_str());
    return out;
  }
  std::string log() const { return read_file(fake + "/log"); }
  std::string installed() const { return read_file(fake + "/installed"); }
  std::string pending() const {
    return fs::exists(work + "/audit-pending.jsonl") ? read_file(work + "/audit-pending.jsonl") : "";
  }
};

// One request line to an admin socket; the answer line.
std::string admin_raw(const std::string& path, const std::string& line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "cannot connect";
  }
  const std::string req = line + "\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return reply;
}

// Checks a refused apply: the message names the check, nothing was installed, the refusal
// was audited (kept locally: no daemon).
void check_refused(const Box& box, const Run& r, const std::string& why) {
  LONGS_EQUAL_TEXT(1, r.code, r.out.c_str());
  CHECK_TEXT(contains(r.out, why), r.out.c_str());
  CHECK_TEXT(!contains(box.log(), "dpkg -i"), box.log().c_str());
  CHECK_TEXT(contains(box.pending(), "update.refused"), box.pending().c_str());
}

}  // namespace

TEST_GROUP(UpdateBundle){};

TEST(UpdateBundle, HelpAndUsage) {
  Box box("0.1.0");
  for (const char* sub : {"verify", "apply", "make"}) {
    Run r = box.supernode(std::string("update ") + sub + " --help");
    LONGS_EQUAL_TEXT(0, r.code, sub);
    CHECK_TEXT(contains(r.out, std::string("usage: supernode update ") + sub), r.out.c_str());
  }
  LONGS_EQUAL(2, box.supernode("update").code);
  LONGS_EQUAL(2, box.supernode("update verify").code);
  LONGS_EQUAL(2, box.supernode("update make -o x").code);
}

TEST(UpdateBundle, GoodBundleVerifiesAndListsItsContents) {
  Box box("0.1.0");
  const std::string b = box.make("0.2.0", "0.1.0");
  Run r = box.verify(b);
  LONGS_EQUAL_TEXT(0, r.code, r.out.c_str());
  CHECK_TEXT(contains(r.out, "supernode 0.2.0 (upgrades from 0.1.0 or later)"), r.out.c_str());
  CHECK_TEXT(contains(r.out, "supernode_0.2.0_amd64.deb"), r.out.c_str());
  CHECK_TEXT(contains(r.out, sha256(deb_bytes("0.2.0"))), r.out.c_str());
  CHECK_TEXT(contains(r.out, "verified: signature and 1 checksums good"), r.out.c_str());
  // The development vendor key in the tree is a valid Ed25519 public key.
  Run dev = box.supernode("update verify --keys-dir " + box.keys + " --keys-dir " + std::string(SN_SOURCE_DIR) +
                          "/image/keys " + b);
  LONGS_EQUAL_TEXT(0, dev.code, dev.out.c_str());
  CHECK_TEXT(!contains(dev.out, "warning"), dev.out.c_str());
}

TEST(UpdateBundle, EachBrokenCheckIsNamed) {
  Box box("0.1.0");
  const std::string good = box.make("0.2.0", "0.1.0");
  const std::string original = read_file(good);
  auto copy = [&](const std::string& name) {
    const std::string p = box.dir.file(name);
    write_file(p, original);
    return p;
  };

  const std::string tampered = copy("tampered.snupdate");
  patch_file(tampered, "package block 1234", "package block 9234");
  Run r = box.verify(tampered);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "tampered file supernode_0.2.0_amd64.deb (sha256 mismatch)"), r.out.c_str());

  const std::string bad_manifest = copy("bad-manifest.snupdate");
  patch_file(bad_manifest, "\"min_version\": \"0.1.0\"", "\"min_version\": \"0.0.0\"");
  r = box.verify(bad_manifest);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "bad signature"), r.out.c_str());

  const std::string bad_sig = copy("bad-sig.snupdate");
  const std::string sig_at = "\"signature\": \"";
  const char first_digit = original[original.find(sig_at) + sig_at.size()];
  patch_file(bad_sig, sig_at + first_digit, sig_at + (first_digit == '0' ? '1' : '0'));
  r = box.verify(bad_sig);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "bad signature"), r.out.c_str());

  const std::string truncated = copy("truncated.snupdate");
  write_file(truncated, original.substr(0, original.size() / 2));
  r = box.verify(truncated);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "truncated bundle"), r.out.c_str());

  const std::string other_key = make_key(box.dir.path(), box.dir.file("other-keys"), "other");
  const std::string unknown = box.make("0.2.0", "0.1.0", other_key);
  r = box.verify(unknown);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "signed by an unknown key"), r.out.c_str());

  const std::string old = box.make("0.1.0", "0.0.1");
  r = box.supernode("update verify --keys-dir " + box.keys + " --installed-version 0.2.0 " + old);
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "downgrade: bundle 0.1.0 < installed 0.2.0"), r.out.c_str());

  const std::string needs = box.make("0.3.0", "0.2.0");
  r = box.verify(needs);  // installed: 0.1.0
  LONGS_EQUAL(1, r.code);
  CHECK_TEXT(contains(r.out, "bundle requires at least 0.2.0 (installed 0.1.0)"), r.out.c_str());
}

TEST(UpdateBundle, MalformedBundlesAreRefused) {
  Box box("0.1.0");
  const Payload deb{"supernode_0.2.0_amd64.deb", deb_bytes("0.2.0")};
  const Payload extra{"notes.txt", "hello"};
  // Correctly signed manifests whose bundles break one rule each.
  struct Case {
    const char* why;
    std::string manifest;
    std::vector<std::pair<std::string, std::string>> payload_entries;
  };
  const std::string m1 = manifest_text("0.2.0", "0.1.0", {deb});
  const std::string big(70 << 10, ' ');
  const std::vector<Case> cases = {
      {"extra file notes.txt (not in the signed manifest)", m1, {{deb.name, deb.data}, {extra.name, extra.data}}},
      {"duplicate file supernode_0.2.0_amd64.deb", m1, {{deb.name, deb.data}, {deb.name, deb.data}}},
      {"missing payload supernode_0.2.0_amd64.deb", manifest_text("0.2.0", "0.1.0", {deb, extra}), {{extra.name, extra.data}}},
      {"size mismatch for supernode_0.2.0_amd64.deb", m1, {{deb.name, deb.data + "x"}}},
      {"unsafe path name 'sub/supernode_0.2.0_amd64.deb'", m1, {{"sub/" + deb.name, deb.data}}},
      {"unsafe path name '../x'", m1, {{"../x", "x"}}},
      {"duplicate payload entry supernode_0.2.0_amd64.deb", manifest_text("0.2.0", "0.1.0", {deb, deb}), {{deb.name, deb.data}}},
      {"unsafe payload name '../supernode_0.2.0_amd64.deb'",
       manifest_text("0.2.0", "0.1.0", {deb}, R"(, {"name": "../supernode_0.2.0_amd64.deb", "size": 1, "sha256": ")" +
                                                  sha256("x") + "\"}"),
       {}},
      {"oversized manifest.json", "{" + big + "}", {}},
      {"no payload named supernode_0.2.0_<arch>.deb", manifest_text("0.2.0", "0.1.0", {extra}), {{extra.name, extra.data}}},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::vector<std::pair<std::string, std::string>> entries = {{"manifest.json", c.manifest},
                                                                {"manifest.sig", sign(box.vendor_key, c.manifest)}};
    entries.insert(entries.end(), c.payload_entries.begin(), c.payload_entries.end());
    const std::string path = box.dir.file("case" + std::to_string(i++) + ".snupdate");
    write_tar(path, entries);
    Run r = box.verify(path);
    LONGS_EQUAL_TEXT(1, r.code, c.why);
    CHECK_TEXT(contains(r.out, c.why), (std::string(c.why) + " <- " + r.out).c_str());
  }
  // Not a bundle at all.
  write_file(box.dir.file("junk"), "junk");
  Run r = box.verify(box.dir.file("junk"));
  LONGS_EQUAL(1, r.code);
}

TEST_GROUP(UpdateApply){};

TEST(UpdateApply, GoodBundleInstallsWaitsForReadyAndCachesThePackage) {
  Box box("0.1.0");
  const std::string b = box.make("0.2.0", "0.1.0");
  // A record kept while the daemon was down goes out first.
  fs::create_directories(box.work);
  write_file(box.work + "/audit-pending.jsonl",
             R"J({"cmd":"audit.record","action":"update.refused","detail":"earlier (recorded late)"})J" "\n");
  FakeAdminSocket daemon(box.socket);
  Run r = box.apply(b);
  LONGS_EQUAL_TEXT(0, r.code, r.out.c_str());
  CHECK_TEXT(contains(r.out, "updated supernode 0.1.0 -> 0.2.0"), r.out.c_str());
  const std::string log = box.log();
  // No cached 0.1.0 package: dpkg-repack made the rollback copy.
  CHECK_TEXT(contains(log, "dpkg-repack supernode"), log.c_str());
  CHECK_TEXT(contains(log, "dpkg -i " + box.work + "/apply-"), log.c_str());
  CHECK_TEXT(contains(log, "/supernode_0.2.0_amd64.deb"), log.c_str());
  CHECK_TEXT(contains(log, "systemctl show"), log.c_str());
  STRCMP_EQUAL("0.2.0\n", box.installed().c_str());
  // The installed package is cached for the next rollback; the extraction directory is gone.
  CHECK_EQUAL(deb_bytes("0.2.0"), read_file(box.work + "/installed/supernode_0.2.0_amd64.deb"));
  for (const auto& de : fs::directory_iterator(box.work)) CHECK_TEXT(!contains(de.path().string(), "apply-"), de.path().c_str());
  // The daemon got: the pending record, the online backup, the audit record of the update.
  const std::vector<std::string> reqs = daemon.requests();
  CHECK_TEXT(reqs.size() >= 3, daemon.all().c_str());
  CHECK_TEXT(contains(reqs[0], "earlier (recorded late)"), daemon.all().c_str());
  CHECK_TEXT(contains(daemon.all(), R"("cmd":"backup")"), daemon.all().c_str());
  CHECK_TEXT(contains(daemon.all(), box.state + "/state.db.before-update-0.2.0-"), daemon.all().c_str());
  CHECK_TEXT(contains(reqs.back(), R"("action":"update.apply")"), daemon.all().c_str());
  CHECK_TEXT(contains(reqs.back(), "installed supernode 0.2.0"), daemon.all().c_str());
  STRCMP_EQUAL("", box.pending().c_str());
}

TEST(UpdateApply, RefusalsInstallNothing) {
  {
    Box box("0.1.0");
    const std::string b = box.make("0.2.0", "0.1.0");
    patch_file(b, "package block 777", "package block 778");
    check_refused(box, box.apply(b), "tampered file supernode_0.2.0_amd64.deb (sha256 mismatch)");
  }
  {
    Box box("0.1.0");
    const std::string b = box.make("0.2.0", "0.1.0");
    patch_file(b, "\"version\": \"0.2.0\"", "\"version\": \"0.2.1\"");
    check_refused(box, box.apply(b), "bad signature");
  }
  {
    Box box("0.1.0");
    const std::string b = box.make("0.2.0", "0.1.0", make_key(box.dir.path(), box.dir.file("k2"), "other"));
    check_refused(box, box.apply(b), "signed by an unknown key");
  }
  {
    Box box("0.1.0");
    const std::string b = box.make("0.2.0", "0.1.0");
    const std::string bytes = read_file(b);
    write_file(b, bytes.substr(0, bytes.size() - 20000));
    check_refused(box, box.apply(b), "truncated bundle");
  }
  {
    Box box("0.2.0");
    check_refused(box, box.apply(box.make("0.1.0", "0.0.1")), "downgrade: bundle 0.1.0 < installed 0.2.0");
  }
  {
    Box box("0.1.0");
    check_refused(box, box.apply(box.make("0.3.0", "0.2.0")), "bundle requires at least 0.2.0");
  }
  {
    Box box("0.2.0");
    check_refused(box, box.apply(box.make("0.2.0", "0.1.0")), "already installed");
  }
  {
    // No package to roll back to (no cache, dpkg-repack fails): refused unless --no-rollback.
    Box box("0.1.0");
    write_file(box.bin + "/dpkg-repack", "#!/bin/sh\nexit 1\n");
    const std::string b = box.make("0.2.0", "0.1.0");
    check_refused(box, box.apply(b), "no package to roll back to");
    Run r = box.apply(b, "--no-rollback");
    LONGS_EQUAL_TEXT(0, r.code, r.out.c_str());
    STRCMP_EQUAL("0.2.0\n", box.installed().c_str());
  }
}

TEST(UpdateApply, VersionThatNeverComesUpIsRolledBack) {
  Box box("0.1.0");
  const std::string b = box.make("0.2.0", "0.1.0");
  write_file(box.fake + "/broken", "0.2.0\n");
  // The previous package, cached by the last update; an offline state database to back up.
  fs::create_directories(box.work + "/installed");
  write_file(box.work + "/installed/supernode_0.1.0_amd64.deb", deb_bytes("0.1.0"));
  sqlite3* db = nullptr;
  CHECK(sqlite3_open((box.state + "/state.db").c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  Run r = box.apply(b);
  LONGS_EQUAL_TEXT(1, r.code, r.out.c_str());
  CHECK_TEXT(contains(r.out, "did not become ready within 1 s"), r.out.c_str());
  CHECK_TEXT(contains(r.out, "rolled back to 0.1.0"), r.out.c_str());
  const std::string log = box.log();
  const size_t first = log.find("dpkg -i ");
  const size_t second = log.find("dpkg -i " + box.work + "/installed/supernode_0.1.0_amd64.deb");
  CHECK_TEXT(first != std::string::npos && contains(log.substr(first, 200), "supernode_0.2.0_amd64.deb"), log.c_str());
  CHECK_TEXT(second != std::string::npos && second > first, log.c_str());
  CHECK_TEXT(!contains(log, "dpkg-repack"), log.c_str());
  STRCMP_EQUAL("0.1.0\n", box.installed().c_str());
  // The cache still holds the package that runs.
  CHECK(fs::exists(box.work + "/installed/supernode_0.1.0_amd64.deb"));
  CHECK(!fs::exists(box.work + "/installed/supernode_0.2.0_amd64.deb"));
  // Daemon down: the offline backup was made and the rollback audited locally.
  bool backed_up = false;
  for (const auto& de : fs::directory_iterator(box.state)) {
    if (contains(de.path().filename().string(), "state.db.before-update-0.2.0-")) {
      backed_up = true;
      CHECK(sqlite3_open(de.path().c_str(), &db) == SQLITE_OK);
      sqlite3_stmt* st = nullptr;
      CHECK(sqlite3_prepare_v2(db, "SELECT x FROM t", -1, &st, nullptr) == SQLITE_OK);
      CHECK(sqlite3_step(st) == SQLITE_ROW);
      LONGS_EQUAL(42, sqlite3_column_int(st, 0));
      sqlite3_finalize(st);
      sqlite3_close(db);
    }
  }
  CHECK_TEXT(backed_up, r.out.c_str());
  CHECK_TEXT(contains(box.pending(), R"("action":"update.rollback")"), box.pending().c_str());
  CHECK_TEXT(contains(r.out, "the daemon did not take the audit record"), r.out.c_str());
}

// With the real supernoded: apply backs up through it and its audit log gets every attempt
// (audit.record), records kept while it was down included, in order; other actions are refused.
TEST_GROUP(UpdateDaemon){};

TEST(UpdateDaemon, ApplyBacksUpAndAuditsThroughTheRunningDaemon) {
  Box box("0.1.0");
  const std::string model = box.dir.file("tiny.gguf");
  Run g = sh(sn::testing::bin_dir() + "/supernode gen-model -o " + model);
  LONGS_EQUAL_TEXT(0, g.code, g.out.c_str());
  sn::testing::daemon::Daemon daemon(model, box.state);
  CHECK_TEXT(daemon.port() != 0, "supernoded did not start");
  box.socket = box.state + "/admin.sock";
  fs::create_directories(box.work);
  write_file(box.work + "/audit-pending.jsonl",
             R"J({"cmd":"audit.record","action":"update.refused","detail":"kept while down"})J" "\n");

  Run r = box.apply(box.make("0.2.0", "0.1.0"));
  LONGS_EQUAL_TEXT(0, r.code, r.out.c_str());
  CHECK_TEXT(contains(r.out, "state backed up (online)"), r.out.c_str());
  STRCMP_EQUAL("", box.pending().c_str());
  Run refused = box.apply(box.make("0.1.5", "0.1.0"));
  LONGS_EQUAL_TEXT(1, refused.code, refused.out.c_str());
  CHECK_TEXT(contains(refused.out, "downgrade: bundle 0.1.5 < installed 0.2.0"), refused.out.c_str());

  const std::string forged = admin_raw(box.socket, R"({"cmd":"audit.record","action":"keys.create","detail":"x"})");
  CHECK_TEXT(contains(forged, "must start with 'update.'"), forged.c_str());
  const std::string extra = admin_raw(box.socket, R"({"cmd":"audit.record","action":"update.x","actor":"root"})");
  CHECK_TEXT(contains(extra, "\"ok\":false"), extra.c_str());

  // The online backup is a checked state file.
  std::string backup;
  for (const auto& de : fs::directory_iterator(box.state)) {
    if (contains(de.path().filename().string(), "state.db.before-update-0.2.0-")) backup = de.path().string();
  }
  CHECK_TEXT(!backup.empty(), r.out.c_str());
  sqlite3* db = nullptr;
  CHECK(sqlite3_open_v2(backup.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  Run verified = box.supernode("audit verify --admin-socket " + box.socket);
  LONGS_EQUAL_TEXT(0, verified.code, verified.out.c_str());
  CHECK(sqlite3_open_v2((box.state + "/state.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  CHECK(sqlite3_prepare_v2(db, "SELECT action, detail FROM audit WHERE action LIKE 'update.%' ORDER BY seq", -1, &st,
                           nullptr) == SQLITE_OK);
  std::vector<std::string> rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + " " +
                   reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::string all;
  for (const std::string& row : rows) all += row + "\n";
  LONGS_EQUAL_TEXT(3, rows.size(), all.c_str());
  CHECK_TEXT(contains(rows[0], "update.refused kept while down"), all.c_str());
  CHECK_TEXT(contains(rows[1], "update.apply installed supernode 0.2.0"), all.c_str());
  CHECK_TEXT(contains(rows[2], "update.refused") && contains(rows[2], "downgrade"), all.c_str());
}
