// supernoded's configuration: the TOML file (/etc/supernode/supernode.toml by default),
// the command-line flags that override it, and the checks of the merged result. main()
// calls daemon_args() and resolve_config(); tests and tools call parse_config().
//
// The file (image/supernode.toml is the commented example; every key is optional and
// shown here with its default):
//
//   listen = "127.0.0.1:8080"            # HOST:PORT; port 0 picks a free one
//   state_dir = "/var/lib/supernode"     # state database, TLS material, KV cache
//   admin_socket = "/run/supernode/admin.sock"
//   plain_http = false                   # refused unless listen is a loopback address
//
//   [tls]                                # both or neither; neither: a self-signed pair in
//   cert = "/etc/supernode/tls/cert.pem" #   STATE_DIR/tls, made at first start
//   key = "/etc/supernode/tls/key.pem"
//
//   [[models]]                           # repeatable; -m on the command line replaces them all
//   path = "/srv/models/llama-3.2-1b-q8_0.gguf"
//   id = "llama-3.2-1b"                  # default: the file stem
//
//   [engine]
//   threads = 0                          # compute threads per model; 0: one per physical core
//   context = 4096                       # longest prompt + completion, tokens
//   max_seqs = 16                        # requests computed together per model
//   batch_tokens = 512                   # tokens per step (prefill chunks and decodes)
//   kv_blocks = 0                        # KV blocks of 16 tokens; 0: max_seqs x context
//   max_waiting = 256                    # requests queued per model before 429
//   max_waiting_per_tenant = 64          # of those, from one tenant
//
//   [kv]                                 # KV cache tiers below the compute device
//   host_mb = 1024                       # host-RAM tier, MiB; 0: off
//   disk_mb = 8192                       # disk tier cap per directory, MiB; 0: off
//   disk_dirs = ["/var/lib/supernode/kv"]  # default: STATE_DIR/kv; one per disk
//   int8 = false                         # keep tier 2-3 blocks as int8
//
//   [server]
//   io_threads = 2
//   max_body_bytes = 4194304
//   max_header_bytes = 16384
//   idle_timeout_s = 60                  # close a connection silent this long
//   drain_timeout_s = 30                 # on stop, wait this long for running requests
//   io_nice = 0                          # the HTTP threads' nice value (5: compute threads first)
//   max_connections = 4096               # open client connections in all; more are closed at accept
//   max_connections_per_address = 1024   # from one client address
//
//   [metrics]                            # Prometheus /metrics, never on the API's listener
//   listen = "127.0.0.1:9464"            # HOST:PORT; "" turns it off; plain HTTP on loopback only
//
//   [quotas]                             # tenant "default" at first start, and tenants created
//   default_rpm = 600                    #   without limits of their own; 0: no limit of that kind
//   default_tpm = 1000000
//   default_concurrency = 64
//
//   [usage]
//   flush_ms = 1000                      # metered usage reaches SQLite at least this often
//
//   [audit]
//   key_file = ""                        # the audit log's HMAC key; "": systemd's credential
//                                        #   "audit-key", else STATE_DIR/audit.key (made once)
//
//   [log]
//   level = "info"                       # debug | info | warning | error
//   prompts = false                      # true: prompt text may appear in the log
//
// Paths in the file must be absolute (under systemd the working directory is /). Every
// value is checked for type, range and spelling; an unknown key or section is an error,
// so a typo never silently falls back to a default. Errors name the file, the line and
// the dotted key, e.g.
//   invalid argument: supernode.toml:12: kv.host_mb: must be an integer between 0 and 1048576, got "lots"
//
// Thread safety: plain functions over values; safe from any thread, but resolve_config
// reads the file system and is meant for start-up and reload.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "supernode/base/args.h"
#include "supernode/base/status.h"
#include "supernode/daemon/log.h"

namespace sn::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/supernode/supernode.toml";

struct ModelConfig {
  std::string id;    // what clients name in "model"
  std::string path;  // GGUF file
};

struct TlsConfig {
  // After resolve_config with plain_http off, both are set: given ones, or
  // STATE_DIR/tls/cert.pem and key.pem. Empty with plain_http.
  std::string cert;
  std::string key;
  // Set by resolve_config: neither cert nor key was given, so main() makes a self-signed
  // pair at those paths when missing (ensure_self_signed_certificate).
  bool self_signed = false;
};

struct EngineConfig {
  int threads = 0;  // 0: one per physical core
  int context = 4096;
  int max_seqs = 16;
  int batch_tokens = 512;  // tokens computed per step, all requests together
  int kv_blocks = 0;       // tier-1 KV blocks of 16 tokens; 0: max_seqs x context
  int max_waiting = 256;   // queued requests per model
  int max_waiting_per_tenant = 64;  // of those, one tenant's
};

struct KvConfig {
  int64_t host_mb = 1024;
  int64_t disk_mb = 8192;              // per directory
  std::vector<std::string> disk_dirs;  // filled with STATE_DIR/kv when not given
  bool int8 = false;
};

struct ServerConfig {
  int io_threads = 2;
  int64_t max_body_bytes = 4 << 20;
  int64_t max_header_bytes = 16 << 10;
  int idle_timeout_s = 60;
  int drain_timeout_s = 30;
  int io_nice = 0;
  int max_connections = 4096;
  int max_connections_per_address = 1024;
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9464";  // empty: no metrics listener
};

// The admin API and web UI ([admin]).
struct AdminConfig {
  bool enabled = true;
  std::string listen;                     // host:port of their own listener; empty: the API's
  int session_idle_timeout_s = 1800;      // an admin session ends after this long unused
  std::vector<std::string> import_dirs;   // model imports only from under these; empty: anywhere
};

struct QuotaConfig {
  int64_t default_rpm = 600;
  int64_t default_tpm = 1000000;
  int64_t default_concurrency = 64;
};

struct UsageConfig {
  int flush_ms = 1000;
};

struct AuditConfig {
  std::string key_file;  // empty: storage::load_audit_key's default places
};

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  bool prompts = false;
};

struct DaemonConfig {
  std::string listen = "127.0.0.1:8080";
  std::string state_dir = "/var/lib/supernode";
  std::string admin_socket = "/run/supernode/admin.sock";
  std::vector<ModelConfig> models;
  bool plain_http = false;
  TlsConfig tls;
  EngineConfig engine;
  KvConfig kv;
  ServerConfig server;
  MetricsConfig metrics;
  AdminConfig admin;
  QuotaConfig quotas;
  UsageConfig usage;
  AuditConfig audit;
  LogConfig log;
  std::string config_file;  // the file read by resolve_config/load_config_file; empty: none
};

// Parses a config file's text. `source_name` (usually the path) starts every error
// message. Checks each value and the file's own consistency (plain_http on a loopback
// address only, not with [tls]; model ids unique) but not that models exist: a file may
// leave them to -m. Fills kv.disk_dirs with STATE_DIR/kv when the file has none.
// Errors: invalid_argument, naming source_name:line[:column] and the dotted key.
[[nodiscard]] Result<DaemonConfig> parse_config(std::string_view text, const std::string& source_name);

// Reads and parses the file at `path`. Errors: not_found (no such file), io_error
// (unreadable, not a regular file, over 1 MiB), and those of parse_config.
[[nodiscard]] Result<DaemonConfig> load_config_file(const std::string& path);

// supernoded's command line: every setting of the file has a flag or the file alone
// (--config FILE, --listen, --state-dir, --admin-socket, -m/--model (repeatable),
// --plain-http, --tls-cert, --tls-key, -t/--threads, --context, --max-seqs, --kv-host-mb,
// --kv-disk-mb, --kv-int8, --metrics-listen, --log-level, --log-prompts). Call parse() on
// the result.
[[nodiscard]] sn::Args daemon_args();

// The configuration supernoded runs with: the config file (--config, or `default_config`
// when it exists; a missing --config file is an error), then each flag given on the
// command line over it (-m replaces the file's model list), then the checks of the merged
// result: plain_http only on a loopback listen address and never with TLS files, a metrics
// listener apart from the API's and in plain HTTP only on loopback, at least
// one model, unique model ids. REQUIRES: parsed.parse() succeeded and --help was not given.
// Errors: invalid_argument naming the flag or file:line:key at fault; those of
// load_config_file.
[[nodiscard]] Result<DaemonConfig> resolve_config(const sn::Args& parsed,
                                                  const std::string& default_config = kDefaultConfigPath);

// Whether `listen` (HOST:PORT) names a loopback host: 127.0.0.0/8, ::1 or localhost.
[[nodiscard]] bool is_loopback(const std::string& listen);

}  // namespace sn::daemon
