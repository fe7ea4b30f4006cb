// `supernode update verify|apply|make`: signed offline updates from one bundle file
// (cli/UPDATE_BUNDLE.md). `verify` checks a bundle without touching anything; `apply` (root)
// verifies, extracts into a private directory, verifies again, backs up the state database,
// keeps the installed package for rollback, installs with dpkg, waits for the service to
// come up and rolls back when it does not; `make` builds and signs a bundle. Every command
// the machine runs goes through UpdateSystem (update_system.h); every apply attempt is
// audited through the daemon's admin socket ({"cmd":"audit.record"}), or kept in
// WORK_DIR/audit-pending.jsonl while the daemon cannot be reached and sent at the next contact.
// Single-threaded.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin_client.h"
#include "commands.h"
#include "update_bundle.h"
#include "update_system.h"

namespace sn::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kPackage = "supernode";
constexpr const char* kDefaultWorkDir = "/var/lib/supernode/updates";
constexpr const char* kDefaultStateDir = "/var/lib/supernode";

std::vector<std::string> key_dirs(const Args& args) {
  std::vector<std::string> dirs = args.all("--keys-dir");
  if (!dirs.empty()) return dirs;
  if (const char* env = std::getenv("SUPERNODE_KEYS_DIRS"); env != nullptr && *env != '\0') {
    const std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(':', start), list.size());
      if (end > start) dirs.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    return dirs;
  }
  return {"/usr/share/supernode/keys", "/etc/supernode/keys"};
}

const OptionSpec kKeysDirOption = {{"--keys-dir"}, "DIR", "trusted public keys (*.pem); repeatable; or SUPERNODE_KEYS_DIRS=A:B",
                                   "/usr/share/supernode/keys and /etc/supernode/keys"};

Result<std::vector<TrustedKey>> trusted_keys(const Args& args) {
  std::vector<std::string> warnings;
  Result<std::vector<TrustedKey>> keys = load_trusted_keys(key_dirs(args), &warnings);
  for (const std::string& w : warnings) std::fprintf(stderr, "supernode: warning: %s\n", w.c_str());
  return keys;
}

std::string short_id(const std::string& key_id) { return key_id.substr(0, 16); }

// The version checks shared by verify and apply: a downgrade and an installed version older
// than the bundle's minimum are refused; the same version is refused only when `same_ok` is false.
Status check_versions(UpdateSystem& sys, const BundleManifest& m, const std::string& installed, bool same_ok) {
  Result<bool> lt = compare_versions(sys, m.version, "lt", installed);
  if (!lt.ok()) return lt.status();
  if (*lt) return Status::failed_precondition("update", "downgrade: bundle " + m.version + " < installed " + installed);
  Result<bool> eq = compare_versions(sys, m.version, "eq", installed);
  if (!eq.ok()) return eq.status();
  if (*eq && !same_ok) return Status::failed_precondition("update", "already installed: bundle " + m.version + " = installed " + installed);
  Result<bool> old = compare_versions(sys, installed, "lt", m.min_version);
  if (!old.ok()) return old.status();
  if (*old) {
    return Status::failed_precondition("update", "bundle requires at least " + m.min_version + " (installed " + installed +
                                                     "); apply the intermediate update first");
  }
  return Status::ok();
}

void print_bundle(const std::string& file, const VerifiedBundle& b) {
  const BundleManifest& m = b.manifest;
  std::printf("bundle %s: %s %s (upgrades from %s or later), created %s\n", file.c_str(), m.product.c_str(),
              m.version.c_str(), m.min_version.c_str(), m.created.c_str());
  std::printf("signed by key %s (%s)\n", b.signer.key_id.c_str(), b.signer.file.c_str());
  for (const BundlePayload& p : m.files) {
    std::printf("  %-40s %12llu bytes  sha256 %s\n", p.name.c_str(), static_cast<unsigned long long>(p.size),
                p.sha256.c_str());
  }
}

// Audit records of apply: to the daemon when it answers, else appended to a local file
// (mode 0600) that is sent, oldest first, at the next successful contact.
class Auditor {
 public:
  Auditor(std::string socket, std::string pending) : socket_(std::move(socket)), pending_(std::move(pending)) {}

  void record(const std::string& action, const std::string& detail) {
    flush_pending();
    const json req = {{"cmd", "audit.record"}, {"action", action}, {"detail", detail}};
    Result<json> r = admin_call(socket_, req);
    if (r.ok()) return;
    std::fprintf(stderr, "supernode: the daemon did not take the audit record (%s); kept in %s, sent at the next contact\n",
                 r.status().message().c_str(), pending_.c_str());
    json late = req;
    late["detail"] = detail + " (at " + now_rfc3339() + ", recorded late)";
    std::error_code ec;
    fs::create_directories(fs::path(pending_).parent_path(), ec);
    const mode_t old = ::umask(0077);
    std::ofstream out(pending_, std::ios::app);
    ::umask(old);
    out << late.dump() << "\n";
    if (!out) std::fprintf(stderr, "supernode: cannot write %s: the audit record is lost\n", pending_.c_str());
  }

  // Sends the kept records; the ones not taken stay (in order).
  void flush_pending() {
    std::ifstream in(pending_);
    if (!in) return;
    std::vector<std::string> lines, left;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
    in.close();
    size_t sent = 0;
    for (const std::string& line : lines) {
      const json req = json::parse(line, nullptr, false);
      if (!left.empty() || req.is_discarded() || !admin_call(socket_, req).ok()) {
        left.push_back(line);
      } else {
        ++sent;
      }
    }
    if (sent == 0) return;
    std::error_code ec;
    if (left.empty()) {
      fs::remove(pending_, ec);
    } else {
      const std::string part = pending_ + ".part";
      {
        const mode_t old = ::umask(0077);
        std::ofstream out(part, std::ios::trunc);
        ::umask(old);
        for (const std::string& l : left) out << l << "\n";
      }
      fs::rename(part, pending_, ec);
    }
    std::fprintf(stderr, "supernode: sent %zu audit records kept while the daemon was down\n", sent);
  }

 private:
  std::string socket_;
  std::string pending_;
};

// An offline, consistent copy of the state database with SQLite's backup API.
Status sqlite_backup(const std::string& db, const std::string& out) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  const std::string part = out + ".part";
  auto done = [&](Status s) {
    if (src != nullptr) sqlite3_close(src);
    if (dst != nullptr) sqlite3_close(dst);
    std::error_code ec;
    if (!s.is_ok()) fs::remove(part, ec);
    return s;
  };
  if (sqlite3_open_v2(db.c_str(), &src, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    return done(Status::io_error(db, src != nullptr ? sqlite3_errmsg(src) : "cannot open"));
  }
  const mode_t old = ::umask(0077);
  const int rc = sqlite3_open_v2(part.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  ::umask(old);
  if (rc != SQLITE_OK) return done(Status::io_error(part, dst != nullptr ? sqlite3_errmsg(dst) : "cannot create"));
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  if (b == nullptr) return done(Status::io_error(part, sqlite3_errmsg(dst)));
  const int step = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (step != SQLITE_DONE) return done(Status::io_error(db, std::string("backup: ") + sqlite3_errstr(step)));
  sqlite3_close(dst);
  dst = nullptr;
  std::error_code ec;
  fs::rename(part, out, ec);
  if (ec) return done(Status::io_error(out, ec.message()));
  return done(Status::ok());
}

// Removes a directory tree when it goes out of scope.
struct TreeGuard {
  std::string path;
  ~TreeGuard() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

std::string find_cached(const std::string& dir, const std::string& version) {
  const std::string prefix = std::string(kPackage) + "_" + version_without_epoch(version) + "_";
  std::error_code ec;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    const std::string n = de.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && n.ends_with(".deb") && de.is_regular_file(ec)) return de.path().string();
  }
  return "";
}

struct ApplyOptions {
  std::string file;
  std::string work_dir;
  std::string state_dir;
  std::string socket;
  std::string unit;
  std::string ready_url;
  std::chrono::seconds ready_timeout{300};
  bool no_rollback = false;
};

// The apply procedure, against `sys`. Returns the exit code.
class Applier {
 public:
  Applier(UpdateSystem& sys, ApplyOptions o, std::vector<TrustedKey> keys)
      : sys_(sys), o_(std::move(o)), keys_(std::move(keys)), audit_(o_.socket, o_.work_dir + "/audit-pending.jsonl") {}

  int run() {
    audit_.flush_pending();
    Result<VerifiedBundle> first = read_bundle(o_.file, keys_);
    if (!first.ok()) return refuse(first.status());
    bundle_ = std::move(*first);
    const BundleManifest& m = bundle_.manifest;
    what_ = "supernode " + m.version + " from " + o_.file + ", signed by key " + short_id(bundle_.signer.key_id);
    print_bundle(o_.file, bundle_);

    Result<std::optional<std::string>> inst = installed_version(sys_, kPackage);
    if (!inst.ok()) return refuse(inst.status());
    if (!inst->has_value()) {
      return refuse(Status::failed_precondition("update", "supernode is not installed (dpkg-query): install the package first"));
    }
    installed_ = **inst;
    if (Status s = check_versions(sys_, m, installed_, /*same_ok=*/false); !s.is_ok()) return refuse(s);

    // A private copy, checked again: the stick may change between reads.
    std::error_code ec;
    fs::create_directories(o_.work_dir, ec);
    if (ec || ::chmod(o_.work_dir.c_str(), 0700) != 0) {
      return refuse(Status::io_error(o_.work_dir, ec ? ec.message() : std::strerror(errno)));
    }
    std::string tmpl = o_.work_dir + "/apply-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return refuse(Status::io_error(o_.work_dir, std::strerror(errno)));
    TreeGuard tmp{tmpl};
    Result<VerifiedBundle> second = read_bundle(o_.file, keys_, tmp.path);
    if (!second.ok()) return refuse(second.status().with_context("extracting"));
    if (second->manifest_bytes != bundle_.manifest_bytes) {
      return refuse(Status::corruption(o_.file, "the bundle changed while it was read (manifest differs)"));
    }
    for (const BundlePayload& p : m.files) {
      Result<std::string> d = sha256_file(tmp.path + "/" + p.name);
      if (!d.ok()) return refuse(d.status());
      if (*d != p.sha256) return refuse(Status::corruption(p.name, "tampered file " + p.name + " (sha256 mismatch after extraction)"));
    }
    std::printf("verified: signature and %zu checksums, twice (bundle and extracted copy)\n", m.files.size());

    // What to go back to.
    const std::string cache = o_.work_dir + "/installed";
    rollback_deb_ = find_cached(cache, installed_);
    if (rollback_deb_.empty()) {
      const std::string dir = tmp.path + "/rollback";
      fs::create_directories(dir, ec);
      Result<CommandResult> r = sys_.run({"dpkg-repack", kPackage}, dir);
      if (r.ok() && r->exit_code == 0) rollback_deb_ = find_cached(dir, installed_);
      if (rollback_deb_.empty() && !o_.no_rollback) {
        return refuse(Status::failed_precondition(
            "update", "no package to roll back to: no " + cache + "/supernode_" + version_without_epoch(installed_) +
                          "_*.deb and dpkg-repack " + (r.ok() && r->exit_code == 127 ? "is not installed" : "failed") +
                          " (install dpkg-repack, or pass --no-rollback)"));
      }
    }
    std::printf("rollback package: %s\n", rollback_deb_.empty() ? "none (--no-rollback)" : rollback_deb_.c_str());

    if (Status s = backup(); !s.is_ok()) return refuse(s.with_context("backup of the state database"));

    Result<UnitState> before = unit_state(sys_, o_.unit);
    if (!before.ok()) return refuse(before.status());

    std::vector<std::string> cmd = {"dpkg", "-i"};
    for (const BundlePayload& p : m.files) cmd.push_back(tmp.path + "/" + p.name);
    std::printf("installing %s (installed: %s)\n", m.version.c_str(), installed_.c_str());
    std::fflush(stdout);
    Result<CommandResult> inst_run = sys_.run(cmd);
    std::string problem;
    if (!inst_run.ok()) {
      problem = inst_run.status().message();
    } else if (inst_run->exit_code != 0) {
      problem = "dpkg -i failed (exit " + std::to_string(inst_run->exit_code) + "): " + tail(inst_run->output);
    } else {
      problem = wait_ready(*before);
    }
    if (problem.empty()) {
      cache_installed(tmp.path + "/" + main_package(m), cache);
      audit_.record("update.apply", "installed " + what_ + " (was " + installed_ + ")");
      std::printf("updated supernode %s -> %s; %s is ready\n", installed_.c_str(), m.version.c_str(), o_.unit.c_str());
      return 0;
    }
    return roll_back(problem);
  }

 private:
  int refuse(const Status& s) {
    std::fprintf(stderr, "supernode: update refused: %s\n", s.message().c_str());
    audit_.record("update.refused", (what_.empty() ? o_.file : what_) + ": " + s.message());
    return 1;
  }

  static std::string tail(const std::string& out) {
    std::string t = out.size() > 400 ? "..." + out.substr(out.size() - 400) : out;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  }

  Status backup() {
    const std::string db = o_.state_dir + "/state.db";
    const std::string out = db + ".before-update-" + version_without_epoch(bundle_.manifest.version) + "-" +
                            std::to_string(std::time(nullptr));
    Result<json> online = admin_call(o_.socket, {{"cmd", "backup"}, {"path", out}});
    if (online.ok()) {
      std::printf("state backed up (online) to %s\n", out.c_str());
      return Status::ok();
    }
    if (online.status().code() != Status::Code::kIoError) return online.status();  // it runs and refused
    std::error_code ec;
    if (!fs::exists(db, ec)) {
      std::printf("no state database at %s: nothing to back up\n", db.c_str());
      return Status::ok();
    }
    if (Status s = sqlite_backup(db, out); !s.is_ok()) return s;
    std::printf("state backed up (daemon not reachable: offline copy) to %s\n", out.c_str());
    return Status::ok();
  }

  // "" when the unit runs a process started after `before` (and the ready URL answers), else why not.
  std::string wait_ready(const UnitState& before) {
    std::string baseline = before.started;
    Result<UnitState> st = unit_state(sys_, o_.unit);
    if (!st.ok()) return st.status().message();
    if (st->started == baseline || st->active == "inactive" || st->active == "failed") {
      // The package did not (re)start the service: do it.
      baseline = st->started;
      Result<CommandResult> r = sys_.run({"systemctl", "restart", "--no-block", o_.unit});
      if (!r.ok()) return r.status().message();
      if (r->exit_code != 0) return "systemctl restart " + o_.unit + " failed: " + tail(r->output);
    }
    const auto deadline = sys_.now() + o_.ready_timeout;
    std::string last = "no state yet";
    for (;;) {
      st = unit_state(sys_, o_.unit);
      if (!st.ok()) return st.status().message();
      last = st->text();
      if (st->active == "failed") return o_.unit + " failed to start (" + last + ")";
      if (st->ready() && st->started != baseline) {
        if (o_.ready_url.empty()) return "";
        Result<CommandResult> r = sys_.run({"curl", "-fsk", "--max-time", "5", "-o", "/dev/null", o_.ready_url});
        if (r.ok() && r->exit_code == 0) return "";
        last += ", " + o_.ready_url + " not ready";
      }
      if (sys_.now() >= deadline) break;
      sys_.sleep_for(std::chrono::milliseconds(500));
    }
    return o_.unit + " did not become ready within " + std::to_string(o_.ready_timeout.count()) + " s (" + last + ")";
  }

  int roll_back(const std::string& problem) {
    std::fprintf(stderr, "supernode: update to %s failed: %s\n", bundle_.manifest.version.c_str(), problem.c_str());
    if (rollback_deb_.empty()) {
      audit_.record("update.rollback", what_ + ": " + problem + "; not rolled back (--no-rollback)");
      std::fprintf(stderr, "supernode: not rolled back (--no-rollback): the box runs whatever dpkg left\n");
      return 1;
    }
    std::fprintf(stderr, "supernode: rolling back to %s (%s)\n", installed_.c_str(), rollback_deb_.c_str());
    Result<UnitState> now = unit_state(sys_, o_.unit);
    Result<CommandResult> r = sys_.run({"dpkg", "-i", rollback_deb_});
    std::string outcome;
    if (!r.ok() || r->exit_code != 0) {
      outcome = "rollback FAILED: dpkg -i " + rollback_deb_ + ": " + (r.ok() ? tail(r->output) : r.status().message());
    } else if (std::string why = wait_ready(now.ok() ? *now : UnitState{}); !why.empty()) {
      outcome = "rolled back to " + installed_ + ", but " + why;
    } else {
      outcome = "rolled back to " + installed_ + "; " + o_.unit + " is ready";
    }
    audit_.record("update.rollback", what_ + ": " + problem + "; " + outcome);
    std::fprintf(stderr, "supernode: %s\n", outcome.c_str());
    return 1;
  }

  // Keeps the installed package's .deb (only that one) for the next update's rollback.
  void cache_installed(const std::string& deb, const std::string& cache) {
    std::error_code ec;
    fs::create_directories(cache, ec);
    for (const auto& de : fs::directory_iterator(cache, ec)) {
      if (de.path().extension() == ".deb") fs::remove(de.path(), ec);
    }
    const std::string dst = cache + "/" + fs::path(deb).filename().string();
    fs::copy_file(deb, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) std::fprintf(stderr, "supernode: warning: cannot keep %s for rollback: %s\n", dst.c_str(), ec.message().c_str());
  }

  UpdateSystem& sys_;
  ApplyOptions o_;
  std::vector<TrustedKey> keys_;
  Auditor audit_;
  VerifiedBundle bundle_;
  std::string what_;
  std::string installed_;
  std::string rollback_deb_;
};

// `update SUB --help` or a parse error: an exit code; -1 to go on.
int parse_sub(Args& args, int argc, char** argv) {
  if (Status s = args.parse(argc, argv, 3); !s.is_ok()) return usage_error(s);
  if (args.help_requested()) {
    std::fputs(args.help_text().c_str(), stdout);
    return 0;
  }
  return -1;
}

int update_verify(int argc, char** argv) {
  Args args("update verify", "FILE [--keys-dir DIR ...] [--installed-version V]",
            "Verifies an update bundle: its manifest's Ed25519 signature against every trusted key,\n"
            "then every payload's size and sha256, streaming; then the versions against the installed\n"
            "package. Prints what the bundle holds; exit 0 only when every check passes.",
            {kKeysDirOption,
             {{"--installed-version"}, "V", "compare with V instead of the installed package", "dpkg-query"}});
  if (int rc = parse_sub(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 1) return usage_error(Status::invalid_argument("update verify", "give one FILE"));
  const std::string file = args.positional()[0];
  Result<std::vector<TrustedKey>> keys = trusted_keys(args);
  if (!keys.ok()) return runtime_error(keys.status());
  Result<VerifiedBundle> b = read_bundle(file, *keys);
  if (!b.ok()) {
    std::fprintf(stderr, "supernode: verification failed: %s\n", b.status().message().c_str());
    return 1;
  }
  print_bundle(file, *b);
  std::unique_ptr<UpdateSystem> sys = real_update_system();
  std::optional<std::string> installed = args.value("--installed-version");
  if (!installed) {
    Result<std::optional<std::string>> v = installed_version(*sys, kPackage);
    if (v.ok()) installed = *v;
  }
  if (!installed) {
    std::printf("installed: none found (version checks skipped)\n");
  } else {
    if (Status s = check_versions(*sys, b->manifest, *installed, /*same_ok=*/true); !s.is_ok()) {
      std::fprintf(stderr, "supernode: verification failed: %s\n", s.message().c_str());
      return 1;
    }
    std::printf("installed: %s (the bundle may upgrade it)\n", installed->c_str());
  }
  std::printf("verified: signature and %zu checksums good\n", b->manifest.files.size());
  return 0;
}

int update_apply(int argc, char** argv) {
  Args args("update apply", "FILE [options]",
            "Installs a verified update bundle (root). Verifies the signature and every checksum,\n"
            "refuses a downgrade, extracts into a private 0700 directory under the work directory and\n"
            "verifies again, backs up the state database (online through the daemon, else offline),\n"
            "keeps the installed package for rollback (cached in WORK_DIR/installed, else dpkg-repack),\n"
            "installs with dpkg -i, waits for the service to be active and running (and READY_URL to\n"
            "answer, when given) and reinstalls the previous package when it does not come up in time.\n"
            "Every attempt is audited (update.apply, update.refused, update.rollback).",
            {kKeysDirOption,
             {{"--work-dir"}, "DIR", "extraction, package cache, pending audit records", kDefaultWorkDir},
             {{"--state-dir"}, "DIR", "the daemon's state directory (offline backup)", kDefaultStateDir},
             {{"--admin-socket"}, "PATH", "the daemon's admin socket", kDefaultAdminSocket},
             {{"--unit"}, "NAME", "the systemd service", "supernode"},
             {{"--ready-timeout"}, "SECONDS", "how long the new version may take to come up", "300"},
             {{"--ready-url"}, "URL", "also wait until this answers 2xx (curl), e.g. https://127.0.0.1:8080/readyz", ""},
             {{"--no-rollback"}, "", "install even when no package to roll back to can be found", ""}});
  if (int rc = parse_sub(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 1) return usage_error(Status::invalid_argument("update apply", "give one FILE"));
  Result<long long> timeout = args.integer("--ready-timeout", 300, 1, 24 * 3600);
  if (!timeout.ok()) return usage_error(timeout.status());
  ApplyOptions o;
  // Absolute: dpkg runs elsewhere and the daemon resolves the backup path from its own directory.
  std::error_code ec;
  o.file = fs::absolute(args.positional()[0], ec).string();
  o.work_dir = fs::absolute(args.str("--work-dir", kDefaultWorkDir), ec).lexically_normal().string();
  o.state_dir = fs::absolute(args.str("--state-dir", kDefaultStateDir), ec).lexically_normal().string();
  o.socket = admin_socket_path(args);
  o.unit = args.str("--unit", "supernode");
  o.ready_url = args.str("--ready-url", "");
  o.ready_timeout = std::chrono::seconds(*timeout);
  o.no_rollback = args.has("--no-rollback");
  // SUPERNODE_UPDATE_ALLOW_NON_ROOT=1: for tests against a fake dpkg/systemctl only.
  const char* allow = std::getenv("SUPERNODE_UPDATE_ALLOW_NON_ROOT");
  if (::geteuid() != 0 && (allow == nullptr || std::string(allow) != "1")) {
    return runtime_error(Status::permission_denied("update apply", "must run as root (it installs packages)"));
  }
  Result<std::vector<TrustedKey>> keys = trusted_keys(args);
  if (!keys.ok()) return runtime_error(keys.status());
  std::unique_ptr<UpdateSystem> sys = real_update_system();
  return Applier(*sys, std::move(o), std::move(*keys)).run();
}

int update_make(int argc, char** argv) {
  Args args("update make", "--key PRIVATE.pem --version V --min-version M -o OUT FILE.deb...",
            "Builds and signs an update bundle of the given packages (one of them named\n"
            "supernode_V_<arch>.deb). The key is an Ed25519 private key in PEM\n"
            "(openssl genpkey -algorithm ed25519); scripts/make-update-bundle.sh wraps this.",
            {{{"--key"}, "FILE", "the signing key (Ed25519 private key, PEM)", ""},
             {{"--version"}, "V", "the version the bundle installs", ""},
             {{"--min-version"}, "M", "the oldest installed version it may upgrade", ""},
             {{"-o", "--output"}, "OUT", "the bundle file to write", ""}});
  if (int rc = parse_sub(args, argc, argv); rc >= 0) return rc;
  for (const char* k : {"--key", "--version", "--min-version", "-o"}) {
    if (!args.has(k)) return usage_error(Status::invalid_argument("update make", std::string(k) + " is required"));
  }
  if (args.positional().empty()) return usage_error(Status::invalid_argument("update make", "give the FILE.deb(s)"));
  BundleManifest m;
  m.version = *args.value("--version");
  m.min_version = *args.value("--min-version");
  const std::string out = *args.value("-o");
  Result<std::string> key_id = make_bundle(*args.value("--key"), &m, args.positional(), out);
  if (!key_id.ok()) return runtime_error(key_id.status());
  std::printf("wrote %s: supernode %s (upgrades from %s or later), %zu files, signed by key %s\n", out.c_str(),
              m.version.c_str(), m.min_version.c_str(), m.files.size(), key_id->c_str());
  return 0;
}

}  // namespace

int cmd_update(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  if (sub == "verify") return update_verify(argc, argv);
  if (sub == "apply") return update_apply(argc, argv);
  if (sub == "make") return update_make(argc, argv);
  const char* usage =
      "usage: supernode update verify FILE | apply FILE | make --key K --version V --min-version M -o OUT FILE.deb...\n\n"
      "Signed offline updates from one bundle file (see `supernode update SUB --help`):\n"
      "  verify   check a bundle's signature, checksums and versions; change nothing\n"
      "  apply    install a bundle (root), with a state backup and rollback when the new version does not come up\n"
      "  make     build and sign a bundle\n";
  if (sub == "--help" || sub == "-h") {
    std::fputs(usage, stdout);
    return 0;
  }
  std::fputs(usage, stderr);
  return 2;
}

}  // namespace sn::cli
