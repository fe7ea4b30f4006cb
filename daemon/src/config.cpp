// supernoded's config file (toml++), its flags and the checks of the merged result. See
// config.h. Debian's libtomlplusplus is built with exceptions (its symbols live in
// toml::v3::ex), so toml::parse throws toml::parse_error; it is caught here and turned
// into a Status, and nothing else in this file throws across its functions.
#include "supernode/daemon/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include <toml++/toml.h>

namespace sn::daemon {
namespace {

constexpr int64_t kMaxHostMb = 1 << 20;        // 1 TiB of host RAM
constexpr int64_t kMaxDiskMb = int64_t{1} << 26;  // 64 TiB per directory
constexpr int64_t kMaxConfigBytes = 1 << 20;

// What parse_config knows beyond the DaemonConfig: where each key was, for the checks that
// involve several keys and for flags that override them.
struct ParsedFile {
  DaemonConfig config;
  std::string source;  // the name errors start with
  std::map<std::string, std::string> where;  // dotted key -> "file:line"
};

std::string quote_value(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// How a value appears in "got ..." of an error.
std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return quote_value(n.as_string()->get());
    case toml::node_type::integer: return std::to_string(n.as_integer()->get());
    case toml::node_type::boolean: return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: break;
  }
  std::ostringstream os;
  n.visit([&](const auto& v) { os << v; });
  return os.str();
}

std::string line_of(const std::string& source, const toml::source_region& r) {
  return source + ":" + std::to_string(r.begin.line);
}

std::string join_known(const std::vector<std::string_view>& known) {
  std::string out;
  for (const std::string_view k : known) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

// Checks `listen` as HOST:PORT; empty when fine, else what is wrong.
std::string listen_problem(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return "must be HOST:PORT";
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(port) > 65535) {
    return "must be HOST:PORT with a port from 0 to 65535";
  }
  return {};
}

// Checks a model id; empty when fine.
std::string model_id_problem(const std::string& id) {
  if (id.empty()) return "must not be empty";
  if (id.size() > 256) return "must be at most 256 characters";
  for (const char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return "must not contain spaces or control characters";
  }
  return {};
}

// Reads the keys of one table of the file into a config, keeping the first error. Every
// getter leaves its output untouched when the key is absent or an error was found.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, const std::string& source, ParsedFile& out, Status& err)
      : table_(table), prefix_(std::move(prefix)), source_(source), out_(out), err_(err) {}

  // An error for every key that is not in `known`: typos must not fall back to defaults.
  void known_keys(const std::vector<std::string_view>& known, bool top_level = false) {
    if (!err_.is_ok()) return;
    for (auto&& [k, v] : table_) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      const std::string what = top_level && v.is_table() ? "unknown section [" + std::string(k.str()) + "]"
                                                         : "unknown key";
      fail(k.source(), dotted(k.str()), what + " (known " + (prefix_.empty() ? "at the top" : "in " + prefix_) + ": " +
                                            join_known(known) + ")");
      return;
    }
  }

  template <typename Int>
  void integer(std::string_view key, int64_t lo, int64_t hi, Int& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    const auto* v = n->as_integer();
    if (v == nullptr || v->get() < lo || v->get() > hi) {
      fail(n->source(), dotted(key),
           "must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + describe(*n));
      return;
    }
    out = static_cast<Int>(v->get());
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    if (!n->is_boolean()) {
      fail(n->source(), dotted(key), "must be true or false, got " + describe(*n));
      return;
    }
    out = n->as_boolean()->get();
  }

  void string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    if (!n->is_string()) {
      fail(n->source(), dotted(key), "must be a string, got " + describe(*n));
      return;
    }
    out = n->as_string()->get();
  }

  void path(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    if (!n->is_string() || !is_absolute(n->as_string()->get())) {
      fail(n->source(), dotted(key), "must be an absolute path, got " + describe(*n));
      return;
    }
    out = n->as_string()->get();
  }

  void path_list(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr || a->empty()) {
      fail(n->source(), dotted(key), "must be a non-empty array of absolute paths, got " + describe(*n));
      return;
    }
    std::vector<std::string> v;
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (!e.is_string() || !is_absolute(e.as_string()->get())) {
        fail(e.source(), dotted(key) + "[" + std::to_string(i) + "]", "must be an absolute path, got " + describe(e));
        return;
      }
      v.push_back(e.as_string()->get());
    }
    out = std::move(v);
  }

  void level(std::string_view key, LogLevel& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return;
    const std::optional<LogLevel> l = n->is_string() ? parse_log_level(n->as_string()->get()) : std::nullopt;
    if (!l) {
      fail(n->source(), dotted(key), "must be one of \"debug\", \"info\", \"warning\", \"error\", got " + describe(*n));
      return;
    }
    out = *l;
  }

  // A sub-table, or nullptr when absent or not a table (then with an error).
  const toml::table* table(std::string_view key) {
    const toml::node* n = get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      fail(n->source(), dotted(key), "must be a table ([" + dotted(key) + "]), got " + describe(*n));
      return nullptr;
    }
    return n->as_table();
  }

  void fail(const toml::source_region& r, const std::string& key, const std::string& detail) {
    if (err_.is_ok()) err_ = Status::invalid_argument(line_of(source_, r), key + ": " + detail);
  }

  [[nodiscard]] std::string dotted(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

 private:
  static bool is_absolute(const std::string& p) { return !p.empty() && p.front() == '/'; }

  // The key's node, remembering where it was; nullptr when absent or after an error.
  const toml::node* get(std::string_view key) {
    if (!err_.is_ok()) return nullptr;
    const toml::node* n = table_.get(key);
    if (n != nullptr) out_.where[dotted(key)] = line_of(source_, n->source());
    return n;
  }

  const toml::table& table_;
  std::string prefix_;
  const std::string& source_;
  ParsedFile& out_;
  Status& err_;
};

void read_models(const toml::node& node, const std::string& source, ParsedFile& out, Status& err) {
  const toml::array* arr = node.as_array();
  if (arr == nullptr || !arr->is_array_of_tables()) {
    err = Status::invalid_argument(line_of(source, node.source()),
                                   "models: must be an array of tables ([[models]] with path = ...), got " + describe(node));
    return;
  }
  for (size_t i = 0; i < arr->size() && err.is_ok(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string name = "models[" + std::to_string(i) + "]";
    TableReader r(t, name, source, out, err);
    r.known_keys({"path", "id"});
    ModelConfig m;
    r.path("path", m.path);
    if (!err.is_ok()) return;
    if (m.path.empty()) {
      err = Status::invalid_argument(line_of(source, t.source()), name + ": path is required");
      return;
    }
    m.id = std::filesystem::path(m.path).stem().string();
    r.string("id", m.id);
    if (!err.is_ok()) return;
    if (std::string p = model_id_problem(m.id); !p.empty()) {
      const toml::node* id = t.get("id");
      r.fail(id != nullptr ? id->source() : t.source(), name + ".id", p + ", got " + quote_value(m.id));
      return;
    }
    out.config.models.push_back(std::move(m));
  }
}

Result<ParsedFile> parse_file(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const toml::source_position& p = e.source().begin;
    return Status::invalid_argument(source + ":" + std::to_string(p.line) + ":" + std::to_string(p.column),
                                    std::string(e.description()));
  } catch (const std::exception& e) {
    return Status::invalid_argument(source, e.what());
  }
  ParsedFile out;
  out.source = source;
  DaemonConfig& c = out.config;
  Status err;
  TableReader top(root, "", source, out, err);
  top.known_keys({"listen", "state_dir", "admin_socket", "plain_http", "tls", "models", "engine", "kv", "server",
                  "metrics", "admin", "quotas", "usage", "audit", "log"},
                 /*top_level=*/true);
  top.string("listen", c.listen);
  if (const toml::node* n = root.get("listen"); n != nullptr && err.is_ok()) {
    if (std::string p = listen_problem(c.listen); !p.empty()) {
      top.fail(n->source(), "listen", p + ", got " + quote_value(c.listen));
    }
  }
  top.path("state_dir", c.state_dir);
  top.path("admin_socket", c.admin_socket);
  top.boolean("plain_http", c.plain_http);
  if (const toml::table* t = top.table("tls")) {
    TableReader r(*t, "tls", source, out, err);
    r.known_keys({"cert", "key"});
    r.path("cert", c.tls.cert);
    r.path("key", c.tls.key);
  }
  if (const toml::node* n = root.get("models"); n != nullptr && err.is_ok()) {
    out.where["models"] = line_of(source, n->source());
    read_models(*n, source, out, err);
  }
  if (const toml::table* t = top.table("engine")) {
    TableReader r(*t, "engine", source, out, err);
    r.known_keys({"threads", "context", "max_seqs", "batch_tokens", "kv_blocks", "max_waiting", "max_waiting_per_tenant"});
    r.integer("threads", 0, 1024, c.engine.threads);
    r.integer("context", 16, 1 << 20, c.engine.context);
    r.integer("max_seqs", 1, 4096, c.engine.max_seqs);
    r.integer("batch_tokens", 16, 1 << 16, c.engine.batch_tokens);
    r.integer("kv_blocks", 0, 1 << 24, c.engine.kv_blocks);
    r.integer("max_waiting", 1, 1 << 20, c.engine.max_waiting);
    r.integer("max_waiting_per_tenant", 1, 1 << 20, c.engine.max_waiting_per_tenant);
  }
  if (const toml::table* t = top.table("kv")) {
    TableReader r(*t, "kv", source, out, err);
    r.known_keys({"host_mb", "disk_mb", "disk_dirs", "int8"});
    r.integer("host_mb", 0, kMaxHostMb, c.kv.host_mb);
    r.integer("disk_mb", 0, kMaxDiskMb, c.kv.disk_mb);
    r.path_list("disk_dirs", c.kv.disk_dirs);
    r.boolean("int8", c.kv.int8);
  }
  if (const toml::table* t = top.table("server")) {
    TableReader r(*t, "server", source, out, err);
    r.known_keys({"io_threads", "max_body_bytes", "max_header_bytes", "idle_timeout_s", "drain_timeout_s", "io_nice",
                  "max_connections", "max_connections_per_address"});
    r.integer("io_threads", 1, 256, c.server.io_threads);
    r.integer("max_body_bytes", 1 << 10, int64_t{1} << 30, c.server.max_body_bytes);
    r.integer("max_header_bytes", 1 << 10, 1 << 20, c.server.max_header_bytes);
    r.integer("idle_timeout_s", 1, 86400, c.server.idle_timeout_s);
    r.integer("drain_timeout_s", 0, 3600, c.server.drain_timeout_s);
    r.integer("io_nice", 0, 19, c.server.io_nice);
    r.integer("max_connections", 1, 1 << 20, c.server.max_connections);
    r.integer("max_connections_per_address", 1, 1 << 20, c.server.max_connections_per_address);
  }
  if (const toml::table* t = top.table("metrics")) {
    TableReader r(*t, "metrics", source, out, err);
    r.known_keys({"listen"});
    r.string("listen", c.metrics.listen);
    if (const toml::node* n = t->get("listen"); n != nullptr && err.is_ok() && !c.metrics.listen.empty()) {
      if (std::string p = listen_problem(c.metrics.listen); !p.empty()) {
        r.fail(n->source(), "listen", p + ", got " + quote_value(c.metrics.listen));
      }
    }
  }
  if (const toml::table* t = top.table("admin")) {
    TableReader r(*t, "admin", source, out, err);
    r.known_keys({"enabled", "listen", "session_idle_timeout_s", "import_dirs"});
    r.boolean("enabled", c.admin.enabled);
    r.string("listen", c.admin.listen);
    if (const toml::node* n = t->get("listen"); n != nullptr && err.is_ok() && !c.admin.listen.empty()) {
      if (std::string p = listen_problem(c.admin.listen); !p.empty()) {
        r.fail(n->source(), "listen", p + ", got " + quote_value(c.admin.listen));
      }
    }
    r.integer("session_idle_timeout_s", 60, 7 * 86400, c.admin.session_idle_timeout_s);
    r.path_list("import_dirs", c.admin.import_dirs);
  }
  if (const toml::table* t = top.table("quotas")) {
    TableReader r(*t, "quotas", source, out, err);
    r.known_keys({"default_rpm", "default_tpm", "default_concurrency"});
    r.integer("default_rpm", 0, int64_t{1} << 40, c.quotas.default_rpm);
    r.integer("default_tpm", 0, int64_t{1} << 40, c.quotas.default_tpm);
    r.integer("default_concurrency", 0, 1 << 20, c.quotas.default_concurrency);
  }
  if (const toml::table* t = top.table("usage")) {
    TableReader r(*t, "usage", source, out, err);
    r.known_keys({"flush_ms"});
    r.integer("flush_ms", 10, 60000, c.usage.flush_ms);
  }
  if (const toml::table* t = top.table("audit")) {
    TableReader r(*t, "audit", source, out, err);
    r.known_keys({"key_file"});
    r.path("key_file", c.audit.key_file);
  }
  if (const toml::table* t = top.table("log")) {
    TableReader r(*t, "log", source, out, err);
    r.known_keys({"level", "prompts"});
    r.level("level", c.log.level);
    r.boolean("prompts", c.log.prompts);
  }
  if (!err.is_ok()) return err;
  return out;
}

Result<ParsedFile> load_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::not_found("config file " + path, "no such file");
    return Status::io_error("config file " + path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::io_error("config file " + path, "not a regular file");
  if (st.st_size > kMaxConfigBytes) return Status::io_error("config file " + path, "larger than 1 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("config file " + path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::io_error("config file " + path, "read failed");
  Result<ParsedFile> parsed = parse_file(text.str(), path);
  if (parsed.ok()) parsed->config.config_file = path;
  return parsed;
}

// Defaults that depend on other settings (STATE_DIR), applied once the flags are in.
void fill_derived(DaemonConfig& c) {
  if (c.kv.disk_dirs.empty()) c.kv.disk_dirs.push_back(c.state_dir + "/kv");
  if (c.plain_http) return;
  c.tls.self_signed = c.tls.cert.empty() && c.tls.key.empty();
  if (c.tls.cert.empty()) c.tls.cert = c.state_dir + "/tls/cert.pem";
  if (c.tls.key.empty()) c.tls.key = c.state_dir + "/tls/key.pem";
}

// Who is blamed for a setting in cross-check errors: a flag or "file:line: key".
struct Blame {
  std::string plain_http;
  std::string tls;  // empty: no TLS files were given
  std::string models;
  std::string metrics;  // metrics.listen
  std::string admin;    // admin.listen
};

std::string file_blame(const ParsedFile& f, const std::string& key) {
  auto it = f.where.find(key);
  return (it != f.where.end() ? it->second : f.source) + ": " + key;
}

Blame file_blames(const ParsedFile& f) {
  Blame b{.plain_http = file_blame(f, "plain_http"), .tls = {}, .models = file_blame(f, "models"),
          .metrics = file_blame(f, "metrics.listen"), .admin = file_blame(f, "admin.listen")};
  for (const char* key : {"tls.cert", "tls.key"}) {
    if (auto it = f.where.find(key); it != f.where.end()) {
      b.tls = std::string("[tls] ") + (key + 4) + " (" + it->second + ")";
      break;
    }
  }
  return b;
}

Status cross_check(const DaemonConfig& c, const Blame& blame) {
  if (c.plain_http && !is_loopback(c.listen)) {
    return Status::invalid_argument(blame.plain_http, "refused on the non-loopback address " + c.listen);
  }
  if (!c.metrics.listen.empty()) {
    if (c.plain_http && !is_loopback(c.metrics.listen)) {
      return Status::invalid_argument(blame.metrics, "plain HTTP (plain_http) is refused on the non-loopback address " +
                                                         c.metrics.listen);
    }
    if (c.metrics.listen == c.listen && c.listen.substr(c.listen.rfind(':')) != ":0") {
      return Status::invalid_argument(blame.metrics, "must differ from the API's listen address " + c.listen +
                                                         ": tenants' keys never reach the metrics");
    }
  }
  if (!c.admin.listen.empty()) {
    if (c.plain_http && !is_loopback(c.admin.listen)) {
      return Status::invalid_argument(blame.admin, "plain HTTP (plain_http) is refused on the non-loopback address " +
                                                       c.admin.listen);
    }
    const bool any_port = c.admin.listen.substr(c.admin.listen.rfind(':')) == ":0";
    if (!any_port && (c.admin.listen == c.listen || c.admin.listen == c.metrics.listen)) {
      return Status::invalid_argument(blame.admin, "must differ from the API's and the metrics' listen addresses "
                                                   "(leave it empty to serve the admin UI on the API's address)");
    }
  }
  if (c.plain_http && !blame.tls.empty()) {
    return Status::invalid_argument(blame.plain_http, "cannot be combined with " + blame.tls);
  }
  for (size_t i = 0; i < c.models.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (c.models[i].id == c.models[j].id) {
        return Status::invalid_argument(blame.models, "two models have the id '" + c.models[i].id + "' (" + c.models[j].path +
                                                          " and " + c.models[i].path + "); give one another id");
      }
    }
  }
  return Status::ok();
}

// The checks and derived defaults of a file read on its own.
Result<DaemonConfig> finish_file(ParsedFile& f) {
  const Blame blame = file_blames(f);
  fill_derived(f.config);
  SN_RETURN_IF_ERROR(cross_check(f.config, blame));
  return std::move(f.config);
}

}  // namespace

bool is_loopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host == "127.0.0.1" || host == "[::1]" || host == "::1" || host.rfind("127.", 0) == 0 || host == "localhost";
}

Result<DaemonConfig> parse_config(std::string_view text, const std::string& source_name) {
  Result<ParsedFile> f = parse_file(text, source_name);
  if (!f.ok()) return f.status();
  return finish_file(*f);
}

Result<DaemonConfig> load_config_file(const std::string& path) {
  Result<ParsedFile> f = load_file(path);
  if (!f.ok()) return f.status();
  return finish_file(*f);
}

sn::Args daemon_args() {
  return sn::Args(
      "supernoded", "[--config FILE] [--listen HOST:PORT] [--state-dir DIR] [--admin-socket PATH] [-m MODEL.gguf ...] [--plain-http]",
      "The Supernode daemon: serves the OpenAI-compatible API over the models given with -m\n"
      "(each under its file stem as the model id) or in the config file. Flags override the\n"
      "config file. On first start with an empty state directory it creates tenant 'default'\n"
      "and one API key, written to STATE_DIR/initial-api-key (mode 0600).",
      {{{"--config"}, "FILE", "TOML config file (read only if present, unless given here)", kDefaultConfigPath},
       {{"--listen"}, "HOST:PORT", "address to serve on", "127.0.0.1:8080"},
       {{"--state-dir"}, "DIR", "where the state database and KV cache live", "/var/lib/supernode"},
       {{"--admin-socket"}, "PATH", "Unix socket of the admin CLI", "/run/supernode/admin.sock"},
       {{"-m", "--model"}, "FILE", "a GGUF model to serve (repeatable; replaces the config file's models)", ""},
       {{"--plain-http"}, "", "serve plain HTTP (refused on a non-loopback address)", ""},
       {{"--tls-cert"}, "FILE", "PEM certificate chain for HTTPS", "STATE_DIR/tls/cert.pem, self-signed at first start"},
       {{"--tls-key"}, "FILE", "PEM private key of --tls-cert", "STATE_DIR/tls/key.pem"},
       {{"-t", "--threads"}, "N", "compute threads per model", "one per physical core"},
       {{"--context"}, "N", "longest prompt + completion per request, in tokens", "4096"},
       {{"--max-seqs"}, "N", "requests computed together per model", "16"},
       {{"--kv-host-mb"}, "MIB", "host-RAM KV cache tier, 0 for none", "1024"},
       {{"--kv-disk-mb"}, "MIB", "disk KV cache tier per directory, 0 for none", "8192"},
       {{"--kv-int8"}, "", "keep host-RAM and disk KV blocks as int8", ""},
       {{"--metrics-listen"}, "HOST:PORT", "where Prometheus scrapes /metrics (\"\" for none)", "127.0.0.1:9464"},
       {{"--log-level"}, "LEVEL", "debug, info, warning or error", "info"},
       {{"--log-prompts"}, "", "allow prompt text in the log", ""}});
}

Result<DaemonConfig> resolve_config(const sn::Args& parsed, const std::string& default_config) {
  ParsedFile f;
  const std::string config_path = parsed.str("--config", default_config);
  std::error_code ec;
  if (parsed.has("--config") || std::filesystem::exists(config_path, ec)) {
    Result<ParsedFile> loaded = load_file(config_path);
    if (!loaded.ok()) return loaded.status();
    f = std::move(*loaded);
  }
  DaemonConfig& c = f.config;
  Blame blame = file_blames(f);

  if (std::optional<std::string> v = parsed.value("--listen")) {
    if (std::string p = listen_problem(*v); !p.empty()) {
      return Status::invalid_argument("supernoded", "option '--listen' " + p + ", got '" + *v + "'");
    }
    c.listen = *v;
  }
  c.state_dir = parsed.str("--state-dir", c.state_dir);
  c.admin_socket = parsed.str("--admin-socket", c.admin_socket);
  if (parsed.has("--plain-http")) {
    c.plain_http = true;
    blame.plain_http = "--plain-http";
  }
  if (parsed.has("--tls-cert") || parsed.has("--tls-key")) {
    c.tls.cert = parsed.str("--tls-cert", c.tls.cert);
    c.tls.key = parsed.str("--tls-key", c.tls.key);
    blame.tls = parsed.has("--tls-cert") ? "--tls-cert" : "--tls-key";
  }
  if (const std::vector<std::string> ms = parsed.all("-m"); !ms.empty()) {
    c.models.clear();
    for (const std::string& path : ms) {
      ModelConfig m{.id = std::filesystem::path(path).stem().string(), .path = path};
      if (std::string p = model_id_problem(m.id); !p.empty()) {
        return Status::invalid_argument("-m " + path, "the model id (the file stem) " + p + ", got '" + m.id + "'");
      }
      c.models.push_back(std::move(m));
    }
    blame.models = "-m";
  }
  const auto flag_int = [&parsed](const std::string& name, auto& out, long long lo, long long hi) -> Status {
    Result<long long> v = parsed.integer(name, static_cast<long long>(out), lo, hi);
    if (!v.ok()) return v.status();
    out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
    return Status::ok();
  };
  SN_RETURN_IF_ERROR(flag_int("-t", c.engine.threads, 0, 1024));
  SN_RETURN_IF_ERROR(flag_int("--context", c.engine.context, 16, 1 << 20));
  SN_RETURN_IF_ERROR(flag_int("--max-seqs", c.engine.max_seqs, 1, 4096));
  SN_RETURN_IF_ERROR(flag_int("--kv-host-mb", c.kv.host_mb, 0, kMaxHostMb));
  SN_RETURN_IF_ERROR(flag_int("--kv-disk-mb", c.kv.disk_mb, 0, kMaxDiskMb));
  if (parsed.has("--kv-int8")) c.kv.int8 = true;
  if (std::optional<std::string> v = parsed.value("--metrics-listen")) {
    if (std::string p = listen_problem(*v); !v->empty() && !p.empty()) {
      return Status::invalid_argument("supernoded", "option '--metrics-listen' " + p + ", got '" + *v + "'");
    }
    c.metrics.listen = *v;
    blame.metrics = "--metrics-listen";
  }
  if (std::optional<std::string> v = parsed.value("--log-level")) {
    const std::optional<LogLevel> l = parse_log_level(*v);
    if (!l) {
      return Status::invalid_argument("supernoded",
                                      "option '--log-level' must be debug, info, warning or error, got '" + *v + "'");
    }
    c.log.level = *l;
  }
  if (parsed.has("--log-prompts")) c.log.prompts = true;

  fill_derived(c);
  SN_RETURN_IF_ERROR(cross_check(c, blame));
  // No model is a valid start: a new appliance has none until its admin imports one in
  // the web UI (the catalog's models load at every start); /readyz says so meanwhile.
  return std::move(c);
}

}  // namespace sn::daemon
