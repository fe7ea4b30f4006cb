// `supernode keys|tenants|usage|audit|backup|status`: the admin CLI, a client of the
// daemon's Unix admin socket (daemon/include/supernode/daemon/admin.h gives the protocol).
// `keys create` prints only the new key on stdout (scripts rely on it); other commands print
// a table or the daemon's answer. Errors go to stderr with exit code 1; usage errors exit 2.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <string>

#include "admin_client.h"
#include "commands.h"
#include "supernode/storage/audit_key.h"
#include "supernode/storage/state_store.h"

namespace sn::cli {

using json = nlohmann::json;

Result<json> admin_call(const std::string& path, const json& req, const std::function<void(const json&)>& progress) {
  const std::string what = "admin socket " + path;
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return Status::invalid_argument(what, "path too long");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::io_error(what, std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Status::io_error(what, why + " (is supernoded running? --admin-socket PATH names another socket)");
  }
  const std::string line = req.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    reply.append(buf, static_cast<size_t>(n));
    // Whole lines before the last are progress reports.
    for (size_t nl; (nl = reply.find('\n')) != std::string::npos && nl + 1 < reply.size();) {
      json p = json::parse(reply.substr(0, nl), nullptr, false);
      reply.erase(0, nl + 1);
      if (progress && p.is_object() && p.contains("progress")) progress(p["progress"]);
    }
    if (!reply.empty() && reply.back() == '\n') {
      json p = json::parse(reply, nullptr, false);
      if (p.is_object() && p.contains("progress")) {
        if (progress) progress(p["progress"]);
        reply.clear();
      }
    }
  }
  ::close(fd);
  json j = json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::io_error(what, "the daemon's answer is not JSON");
  if (!j.value("ok", false)) return Status::invalid_argument(what, j.value("error", std::string("refused")));
  return j;
}

std::string admin_socket_path(const Args& args) {
  const char* env = std::getenv("SUPERNODE_ADMIN_SOCKET");
  return args.str("--admin-socket", env != nullptr && *env != '\0' ? env : kDefaultAdminSocket);
}

namespace {

constexpr const char* kDefaultSocket = kDefaultAdminSocket;

Result<json> call(const std::string& path, const json& req, const std::function<void(const json&)>& progress = {}) {
  return admin_call(path, req, progress);
}

// Common options of the admin commands.
std::vector<OptionSpec> admin_options(std::vector<OptionSpec> more) {
  more.push_back({{"--admin-socket"}, "PATH", "the daemon's admin socket", kDefaultSocket});
  return more;
}

Status add_limits(const Args& args, json& req) {
  for (const char* k : {"--rpm", "--tpm", "--concurrency"}) {
    if (!args.has(k)) continue;
    Result<long long> v = args.integer(k, 0, 0, 1LL << 40);
    if (!v.ok()) return v.status();
    req[std::string(k + 2)] = *v;
  }
  if (args.has("--models")) {
    json models = json::array();
    const std::string list = *args.value("--models");
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      if (end > start) models.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    req["models"] = models;
  }
  return Status::ok();
}

const std::vector<OptionSpec> kLimitOptions = {
    {{"--rpm"}, "N", "requests per minute (0: no limit)", "0"},
    {{"--tpm"}, "N", "prompt + completion tokens per minute (0: no limit)", "0"},
    {{"--concurrency"}, "N", "requests in flight (0: no limit)", "0"},
    {{"--models"}, "a,b", "allowed model ids (default: all)", ""}};

std::string socket_path(const Args& args) { return admin_socket_path(args); }

int run_call(const Args& args, const json& req, json* out, const std::function<void(const json&)>& progress = {}) {
  Result<json> r = call(socket_path(args), req, progress);
  if (!r.ok()) return runtime_error(r.status());
  *out = std::move(*r);
  return 0;
}

std::string limits_text(const json& l) {
  std::string models;
  for (const json& m : l.value("models", json::array())) models += (models.empty() ? "" : ",") + m.get<std::string>();
  return "rpm " + std::to_string(l.value("rpm", 0)) + ", tpm " + std::to_string(l.value("tpm", 0)) + ", concurrency " +
         std::to_string(l.value("concurrency", 0)) + ", models " + (models.empty() ? "all" : models);
}

// The prelude of commands with subcommands (`keys create ...`): help when asked or when the
// subcommand is missing (exit 2 then), else the options after the subcommand. Returns the
// exit code to leave with, or -1 to go on.
int parse_subcommand(Args& args, const std::string& sub, int argc, char** argv) {
  if (sub == "--help" || sub == "-h" || sub.empty()) {
    std::printf("%s", args.help_text().c_str());
    return sub.empty() ? 2 : 0;
  }
  if (Status s = args.parse(argc, argv, 3); !s.is_ok()) return usage_error(s);
  if (args.help_requested()) {
    std::printf("%s", args.help_text().c_str());
    return 0;
  }
  return -1;
}

// FILE made absolute against the working directory: the daemon resolves paths from its own.
std::string absolute_path(const std::string& file) {
  char cwd[4096];
  return file.rfind('/', 0) == 0 || ::getcwd(cwd, sizeof cwd) == nullptr ? file : std::string(cwd) + "/" + file;
}

}  // namespace

int cmd_keys(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  std::vector<OptionSpec> opts = kLimitOptions;
  opts.push_back({{"--tenant"}, "NAME", "the key's tenant (create), or only this tenant's keys (list)", ""});
  opts.push_back({{"--label"}, "TEXT", "a note shown in lists", ""});
  Args args("keys", "create --tenant NAME [--rpm N] [--tpm N] [--concurrency N] [--models a,b] | list [--tenant NAME] | revoke KEY_ID",
            "Manages API keys through the daemon's admin socket. `keys create` prints only the new\n"
            "key (it is shown this once; only its hash is stored).",
            admin_options(opts));
  if (int rc = parse_subcommand(args, sub, argc, argv); rc >= 0) return rc;
  json req, res;
  if (sub == "create") {
    if (!args.has("--tenant")) return usage_error(Status::invalid_argument("keys create", "--tenant NAME is required"));
    req = {{"cmd", "keys.create"}, {"tenant", *args.value("--tenant")}, {"label", args.str("--label", "")}};
    if (Status s = add_limits(args, req); !s.is_ok()) return usage_error(s);
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    std::printf("%s\n", res["key"].get<std::string>().c_str());
    return 0;
  }
  if (sub == "list") {
    req = {{"cmd", "keys.list"}, {"tenant", args.str("--tenant", "")}};
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    std::printf("%-18s %-16s %-8s %s\n", "key id", "tenant", "state", "limits");
    for (const json& k : res["keys"]) {
      std::printf("%-18s %-16s %-8s %s%s%s\n", k["key_id"].get<std::string>().c_str(), k["tenant"].get<std::string>().c_str(),
                  k["revoked"].get<bool>() ? "revoked" : "active", limits_text(k["limits"]).c_str(),
                  k["label"].get<std::string>().empty() ? "" : "  # ", k["label"].get<std::string>().c_str());
    }
    return 0;
  }
  if (sub == "revoke") {
    if (args.positional().size() != 1) return usage_error(Status::invalid_argument("keys revoke", "give one KEY_ID"));
    req = {{"cmd", "keys.revoke"}, {"key_id", args.positional()[0]}};
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    std::printf("revoked %s\n", args.positional()[0].c_str());
    return 0;
  }
  return usage_error(Status::invalid_argument("keys", "unknown subcommand '" + sub + "' (create, list, revoke)"));
}

int cmd_tenants(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  Args args("tenants", "create NAME [--rpm N] [--tpm N] [--concurrency N] [--models a,b] | list",
            "Manages tenants through the daemon's admin socket.", admin_options(kLimitOptions));
  if (int rc = parse_subcommand(args, sub, argc, argv); rc >= 0) return rc;
  json req, res;
  if (sub == "create") {
    if (args.positional().size() != 1) return usage_error(Status::invalid_argument("tenants create", "give one NAME"));
    req = {{"cmd", "tenants.create"}, {"name", args.positional()[0]}};
    if (Status s = add_limits(args, req); !s.is_ok()) return usage_error(s);
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    std::printf("created tenant %s (%s)\n", args.positional()[0].c_str(), limits_text(res["tenant"]["limits"]).c_str());
    return 0;
  }
  if (sub == "list") {
    req = {{"cmd", "tenants.list"}};
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    for (const json& t : res["tenants"]) {
      std::printf("%-20s %s\n", t["name"].get<std::string>().c_str(), limits_text(t["limits"]).c_str());
    }
    return 0;
  }
  return usage_error(Status::invalid_argument("tenants", "unknown subcommand '" + sub + "' (create, list)"));
}

int cmd_usage(int argc, char** argv) {
  Args args("usage", "[--tenant NAME] [--minutes N]", "Usage per key per minute, from the daemon's metering.",
            admin_options({{{"--tenant"}, "NAME", "only this tenant", ""},
                           {{"--minutes"}, "N", "how far back", "60"}}));
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  Result<long long> minutes = args.integer("--minutes", 60, 1, 1LL << 30);
  if (!minutes.ok()) return usage_error(minutes.status());
  json res;
  if (int rc = run_call(args, {{"cmd", "usage"}, {"tenant", args.str("--tenant", "")}, {"since_minutes", *minutes}}, &res);
      rc != 0) {
    return rc;
  }
  std::printf("%-12s %-18s %-16s %9s %14s %18s\n", "minute", "key id", "tenant", "requests", "prompt tokens",
              "completion tokens");
  for (const json& u : res["rows"]) {
    std::printf("%-12lld %-18s %-16s %9lld %14lld %18lld\n", static_cast<long long>(u["minute"].get<int64_t>()),
                u["key_id"].get<std::string>().c_str(), u["tenant"].get<std::string>().c_str(),
                static_cast<long long>(u["requests"].get<int64_t>()), static_cast<long long>(u["prompt_tokens"].get<int64_t>()),
                static_cast<long long>(u["completion_tokens"].get<int64_t>()));
  }
  return 0;
}

int cmd_audit(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  Args args("audit", "verify", "Recomputes the audit log's SHA-256 chain; exit 1 when it is broken.", admin_options({}));
  if (sub != "verify") {
    if (sub == "--help" || sub == "-h") {
      std::printf("%s", args.help_text().c_str());
      return 0;
    }
    return usage_error(Status::invalid_argument("audit", "the subcommand is 'verify'"));
  }
  if (Status s = args.parse(argc, argv, 3); !s.is_ok()) return usage_error(s);
  json res;
  if (int rc = run_call(args, {{"cmd", "audit.verify"}}, &res); rc != 0) return rc;
  if (res["verified"].get<bool>()) {
    std::printf("audit log verified: %lld rows, chain intact\n", static_cast<long long>(res["rows"].get<int64_t>()));
    return 0;
  }
  std::fprintf(stderr, "supernode: audit log BROKEN at row %lld: %s\n",
               static_cast<long long>(res["first_bad_seq"].get<int64_t>()), res["problem"].get<std::string>().c_str());
  return 1;
}

int cmd_backup(int argc, char** argv) {
  Args args("backup", "FILE", "An online, consistent copy of the daemon's state database into FILE.", admin_options({}));
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 1) return usage_error(Status::invalid_argument("backup", "give one FILE"));
  const std::string path = absolute_path(args.positional()[0]);
  json res;
  if (int rc = run_call(args, {{"cmd", "backup"}, {"path", path}}, &res); rc != 0) return rc;
  std::printf("backed up to %s\n", path.c_str());
  return 0;
}

int cmd_status(int argc, char** argv) {
  Args args("status", "", "What the daemon serves: per model, running and waiting requests, KV blocks.", admin_options({}));
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  json res;
  if (int rc = run_call(args, {{"cmd", "status"}}, &res); rc != 0) return rc;
  for (const json& m : res["models"]) {
    std::printf("%-24s running %lld, waiting %lld, steps %lld, tokens %lld, KV blocks %lld/%lld\n",
                m["id"].get<std::string>().c_str(), static_cast<long long>(m["running"].get<int64_t>()),
                static_cast<long long>(m["waiting"].get<int64_t>()), static_cast<long long>(m["steps"].get<int64_t>()),
                static_cast<long long>(m["tokens_generated"].get<int64_t>()),
                static_cast<long long>(m["kv_blocks_used"].get<int64_t>()), static_cast<long long>(m["kv_blocks"].get<int64_t>()));
  }
  return 0;
}

int cmd_models(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  Args args("models", "import PATH [--id ID] | list | load ID | unload ID | remove ID",
            "The daemon's model catalog, through its admin socket. `import` copies a GGUF file into\n"
            "STATE_DIR/models (the daemon must be able to read PATH), checks it and records its\n"
            "sha256, with progress on stderr; `load` serves a catalog model now and at every start;\n"
            "`unload` lets its requests finish (bounded), then stops serving it; `remove` drops an\n"
            "unloaded model from the catalog.",
            admin_options({{{"--id"}, "ID", "the model id clients name (import)", "the file's stem"}}));
  if (int rc = parse_subcommand(args, sub, argc, argv); rc >= 0) return rc;
  json req, res;
  if (sub == "import") {
    if (args.positional().size() != 1) return usage_error(Status::invalid_argument("models import", "give one PATH"));
    const std::string file = args.positional()[0];
    const std::string path = absolute_path(file);
    req = {{"cmd", "models.import"}, {"path", path}};
    if (args.has("--id")) req["id"] = *args.value("--id");
    const bool tty = ::isatty(2) != 0;
    int last = -1;
    auto progress = [&](const json& p) {
      const int64_t total = p.value("total", int64_t{0}), bytes = p.value("bytes", int64_t{0});
      const int pct = total > 0 ? static_cast<int>(bytes * 100 / total) : 100;
      if (pct == last || (!tty && pct % 10 != 0)) return;
      last = pct;
      std::fprintf(stderr, tty ? "\rimporting %s: %3d%% (%lld of %lld MiB)" : "importing %s: %d%% (%lld of %lld MiB)\n",
                   file.c_str(), pct, static_cast<long long>(bytes >> 20), static_cast<long long>(total >> 20));
    };
    const int rc = run_call(args, req, &res, progress);
    if (tty && last >= 0) std::fprintf(stderr, "\n");
    if (rc != 0) return rc;
    const json& m = res["model"];
    std::printf("imported %s: %s, %lld bytes, sha256 %s\n", m["id"].get<std::string>().c_str(),
                m["path"].get<std::string>().c_str(), static_cast<long long>(m["bytes"].get<int64_t>()),
                m["sha256"].get<std::string>().c_str());
    return 0;
  }
  if (sub == "list") {
    if (int rc = run_call(args, {{"cmd", "models.list"}}, &res); rc != 0) return rc;
    std::printf("%-24s %-9s %-9s %12s  %-16s %s\n", "id", "state", "catalog", "bytes", "sha256", "path");
    for (const json& m : res["models"]) {
      const std::string state = m.value("loading", false) ? "loading" : m.value("loaded", false) ? "loaded" : "-";
      const std::string sha = m.value("sha256", std::string());
      std::printf("%-24s %-9s %-9s %12lld  %-16s %s\n", m["id"].get<std::string>().c_str(), state.c_str(),
                  m.value("in_catalog", false) ? (m.value("autoload", false) ? "autoload" : "yes") : "no",
                  static_cast<long long>(m.value("bytes", int64_t{0})), sha.substr(0, 16).c_str(),
                  m.value("path", std::string()).c_str());
    }
    return 0;
  }
  if (sub == "load" || sub == "unload" || sub == "remove") {
    if (args.positional().size() != 1) return usage_error(Status::invalid_argument("models " + sub, "give one ID"));
    const std::string id = args.positional()[0];
    if (int rc = run_call(args, {{"cmd", "models." + sub}, {"id", id}}, &res); rc != 0) return rc;
    std::printf("%s %s\n", sub == "load" ? "loaded" : sub == "unload" ? "unloaded" : "removed", id.c_str());
    return 0;
  }
  return usage_error(Status::invalid_argument("models", "unknown subcommand '" + sub + "' (import, list, load, unload, remove)"));
}

int cmd_restore(int argc, char** argv) {
  Args args("restore", "FILE --state-dir DIR",
            "Replaces the daemon's state database with a backup, while supernoded is stopped. The\n"
            "backup is checked first (SQLite integrity check and the audit log's chain, keyed rows\n"
            "with the audit key); the current database is kept beside it as\n"
            "state.db.before-restore-TIME; the restore is recorded in the restored audit log.",
            admin_options({{{"--state-dir"}, "DIR", "the daemon's state directory", "/var/lib/supernode"},
                           {{"--audit-key"}, "FILE", "the audit key file",
                            "$CREDENTIALS_DIRECTORY/audit-key, else STATE_DIR/audit.key"}}));
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (args.positional().size() != 1) return usage_error(Status::invalid_argument("restore", "give one FILE"));
  const std::string file = args.positional()[0];
  const std::string dir = args.str("--state-dir", "/var/lib/supernode");
  const std::string db = dir + "/state.db";
  // A running daemon would keep writing the old database.
  if (call(socket_path(args), {{"cmd", "status"}}).ok()) {
    return runtime_error(Status::invalid_argument("restore", "supernoded is running (its admin socket answers): stop it first"));
  }
  Result<storage::AuditKey> key = storage::load_audit_key(dir, args.str("--audit-key", ""), /*create=*/false);
  if (!key.ok() && key.status().code() != Status::Code::kNotFound) return runtime_error(key.status());
  const std::string audit_key = key.ok() ? key->key : std::string();
  Result<storage::AuditVerification> check = storage::check_state_file(file, audit_key);
  if (!check.ok()) return runtime_error(check.status().with_context("restore " + file));
  if (!check->ok) {
    return runtime_error(Status::corruption("restore " + file, "its audit chain is broken at row " +
                                                                  std::to_string(check->first_bad_seq) + ": " + check->problem));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return runtime_error(Status::not_found("restore", "no state directory " + dir));
  }
  const std::string part = db + ".restoring";
  std::filesystem::copy_file(file, part, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return runtime_error(Status::io_error("restore: copy to " + part, ec.message()));
  if (std::filesystem::exists(db)) {
    const std::string keep = db + ".before-restore-" + std::to_string(std::time(nullptr));
    std::filesystem::rename(db, keep, ec);
    if (ec) return runtime_error(Status::io_error("restore: keep " + db, ec.message()));
    std::fprintf(stderr, "restore: the previous database is kept as %s\n", keep.c_str());
  }
  for (const char* side : {"-wal", "-shm"}) std::filesystem::remove(db + side, ec);
  std::filesystem::rename(part, db, ec);
  if (ec) return runtime_error(Status::io_error("restore: rename to " + db, ec.message()));
  storage::StateStoreOptions options;
  options.audit_key = audit_key;  // the restore's own audit row is keyed like the rest
  Result<std::unique_ptr<storage::StateStore>> st = storage::StateStore::open(db, options);
  if (!st.ok()) return runtime_error(st.status().with_context("restore: open the restored database"));
  if (Status a = (*st)->audit("admin uid " + std::to_string(::getuid()), "restore", file); !a.is_ok()) {
    return runtime_error(a);
  }
  std::printf("restored %s from %s (%lld audit rows verified)\n", db.c_str(), file.c_str(),
              static_cast<long long>(check->rows));
  return 0;
}

int cmd_moderation(int argc, char** argv) {
  const std::string sub = argc > 2 ? argv[2] : "";
  Args args("moderation", "add TERM [--scope input|output|both] | remove TERM | list",
            "Content moderation's sensitive terms, through the daemon's admin socket. A prompt holding\n"
            "an input term is refused (400, code content_filter); generation that produces an output\n"
            "term ends there with finish_reason content_filter. Case-insensitive; effective at once.",
            admin_options({{{"--scope"}, "SCOPE", "input, output or both (add)", "both"}}));
  if (int rc = parse_subcommand(args, sub, argc, argv); rc >= 0) return rc;
  json res;
  if (sub == "add" || sub == "remove") {
    if (args.positional().size() != 1) return usage_error(Status::invalid_argument("moderation " + sub, "give one TERM"));
    json req = {{"cmd", "moderation." + sub}, {"term", args.positional()[0]}};
    if (sub == "add") req["scope"] = args.str("--scope", "both");
    if (int rc = run_call(args, req, &res); rc != 0) return rc;
    std::printf("%s; %lld terms\n", sub == "add" ? "added" : "removed", static_cast<long long>(res.value("terms", int64_t{0})));
    return 0;
  }
  if (sub == "list") {
    if (int rc = run_call(args, {{"cmd", "moderation.list"}}, &res); rc != 0) return rc;
    for (const json& t : res["terms"]) {
      std::printf("%-7s %s\n", t["scope"].get<std::string>().c_str(), t["term"].get<std::string>().c_str());
    }
    return 0;
  }
  return usage_error(Status::invalid_argument("moderation", "unknown subcommand '" + sub + "' (add, remove, list)"));
}

}  // namespace sn::cli
