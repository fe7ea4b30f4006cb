// supernoded: the one daemon of the box. Reads its configuration (config.h: the TOML file,
// then flags over it), opens the state store (creating tenant `default` and its first API
// key on an empty state directory, written to STATE_DIR/initial-api-key with mode 0600,
// never logged), loads the configured models and the catalog models marked for loading,
// and serves the OpenAI-compatible API and the admin socket.
//
// Process life (systemd.h): READY=1 once models are loaded and the API listens, STATUS=
// while loading, watchdog pings only while every engine makes progress or idles, the
// listening socket from socket activation when given. SIGHUP re-reads the config file: log
// level and prompt logging, and the [[models]] list (models added are loaded, models removed
// are drained and unloaded); other changes need a restart and say so. SIGTERM/SIGINT drain:
// new completions get 503, requests in flight finish within server.drain_timeout_s, exit.
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "supernode/base/args.h"
#include "supernode/base/mutex.h"
#include "supernode/daemon/admin.h"
#include "supernode/daemon/admin_service.h"
#include "supernode/daemon/config.h"
#include "supernode/daemon/log.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/base/secret_file.h"
#include "supernode/daemon/server.h"
#include "supernode/daemon/systemd.h"
#include "supernode/daemon/tls.h"
#include "supernode/storage/audit_key.h"
#include "supernode/storage/state_store.h"

namespace {

using sn::daemon::LogLevel;

int fail(const sn::Status& s, int code = 1) {
  std::fprintf(stderr, "supernoded: %s\n", s.to_string().c_str());
  return code;
}

// "HOST:PORT" of a listening socket passed by systemd; "" when it is not TCP.
std::string socket_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "";
}

// Options of every model host, from the configuration.
sn::daemon::ModelHostOptions host_options(const sn::daemon::DaemonConfig& cfg, const std::string& id,
                                          const std::string& path, const std::string& kv_mac_key) {
  sn::daemon::ModelHostOptions o;
  o.id = id;
  o.path = path;
  o.threads = cfg.engine.threads;
  o.context = cfg.engine.context;
  o.max_seqs = cfg.engine.max_seqs;
  o.batch_tokens = cfg.engine.batch_tokens;
  o.kv_blocks = cfg.engine.kv_blocks;
  o.max_waiting = cfg.engine.max_waiting;
  o.max_waiting_per_tenant = cfg.engine.max_waiting_per_tenant;
  if (cfg.kv.host_mb > 0) {
    o.tiers.host_bytes = static_cast<uint64_t>(cfg.kv.host_mb) << 20;
    o.tiers.int8 = cfg.kv.int8;
    if (cfg.kv.disk_mb > 0) {
      // One subdirectory per model: a directory's blocks of another model count as foreign.
      for (const std::string& d : cfg.kv.disk_dirs) o.tiers.disk_dirs.push_back(d + "/" + id);
      o.tiers.disk_bytes_per_dir = static_cast<uint64_t>(cfg.kv.disk_mb) << 20;
      o.tiers.disk_mac_key = kv_mac_key;
    }
  }
  return o;
}

// Wakes the watchdog thread early at exit.
struct Stopper {
  sn::Mutex mu;
  sn::CondVar cv;
  bool stop SN_GUARDED_BY(mu) = false;
  // Waits up to `period`; true once stopping was asked for.
  bool wait(std::chrono::microseconds period) SN_EXCLUDES(mu) {
    const auto deadline = std::chrono::steady_clock::now() + period;
    sn::MutexLock lock(mu);
    while (!stop) {
      if (!cv.wait_until(mu, deadline)) break;
    }
    return stop;
  }
  void request() SN_EXCLUDES(mu) {
    {
      sn::MutexLock lock(mu);
      stop = true;
    }
    cv.notify_all();
  }
};

}  // namespace

int main(int argc, char** argv) {
  // SIGINT, SIGTERM and SIGHUP are blocked in every thread (threads inherit the mask) and
  // taken by the main thread with sigwait once serving.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const std::vector<int> activated = sn::daemon::listen_fds();  // first: it unsets LISTEN_*

  sn::Args args = sn::daemon::daemon_args();
  sn::Status parsed = args.parse(argc, argv, 1);
  if (args.help_requested()) {
    std::printf("%s", args.help_text().c_str());
    return 0;
  }
  if (!parsed.is_ok()) return fail(parsed, 2);
  if (!args.positional().empty()) {
    return fail(sn::Status::invalid_argument("supernoded", "unexpected argument '" + args.positional().front() + "'"), 2);
  }
  sn::Result<sn::daemon::DaemonConfig> resolved = sn::daemon::resolve_config(args);
  if (!resolved.ok()) return fail(resolved.status(), 2);
  sn::daemon::DaemonConfig cfg = std::move(*resolved);
  sn::daemon::set_log_level(cfg.log.level);
  sn::daemon::set_log_prompts(cfg.log.prompts);
  std::string listen = cfg.listen;
  if (!activated.empty()) {
    listen = socket_address(activated.front());
    if (listen.empty()) return fail(sn::Status::invalid_argument("socket activation", "the passed socket is not TCP"));
    if (cfg.plain_http && !sn::daemon::is_loopback(listen)) {
      return fail(sn::Status::invalid_argument("--plain-http", "refused on the non-loopback address " + listen), 2);
    }
  }

  std::error_code fs_ec;
  std::filesystem::create_directories(cfg.state_dir, fs_ec);
  if (fs_ec) return fail(sn::Status::io_error("state directory " + cfg.state_dir, fs_ec.message()));
  sn::storage::StateStoreOptions store_options;
  store_options.usage_flush_interval_ms = cfg.usage.flush_ms;
  sn::Result<sn::storage::AuditKey> audit_key = sn::storage::load_audit_key(cfg.state_dir, cfg.audit.key_file, true);
  if (!audit_key.ok()) return fail(audit_key.status());
  store_options.audit_key = audit_key->key;
  sn::daemon::log(LogLevel::kInfo, std::string("audit log keyed by ") + audit_key->path +
                                       (audit_key->created ? " (made now; keep a copy with the backups)" : ""));
  sn::Result<std::unique_ptr<sn::storage::StateStore>> state =
      sn::storage::StateStore::open(cfg.state_dir + "/state.db", store_options);
  if (!state.ok()) return fail(state.status());
  if (!(*state)->backup_before_migration().empty()) {
    sn::daemon::log(LogLevel::kInfo, "the state database moved to schema " + std::to_string((*state)->schema_version()) +
                                         "; the earlier one is kept as " + (*state)->backup_before_migration());
  }
  const sn::storage::Limits default_limits{.rpm = cfg.quotas.default_rpm,
                                           .tpm = cfg.quotas.default_tpm,
                                           .concurrency = cfg.quotas.default_concurrency,
                                           .models = {}};
  sn::Result<std::optional<sn::storage::NewApiKey>> first = (*state)->bootstrap(default_limits);
  if (!first.ok()) return fail(first.status());
  if (*first) {
    const std::string key_path = cfg.state_dir + "/initial-api-key";
    if (sn::Status s = sn::write_secret_file(key_path, (*first)->key + "\n"); !s.is_ok()) {
      return fail(s.with_context("cannot write the initial API key"));
    }
    sn::daemon::log(LogLevel::kInfo, "created tenant 'default' and its first API key; the key is in " + key_path,
                    {.tenant = "default", .key_id = (*first)->record.key_id});
  }

  // The disk KV tier's MAC key, derived from the audit key (one secret to keep): blocks
  // planted or edited by someone who can write the KV directories are never served.
  std::string kv_mac_key(32, '\0');
  {
    unsigned len = 0;
    const std::string label = "supernode-kv-block-mac-v1";
    HMAC(EVP_sha256(), audit_key->key.data(), static_cast<int>(audit_key->key.size()),
         reinterpret_cast<const unsigned char*>(label.data()), label.size(), reinterpret_cast<unsigned char*>(kv_mac_key.data()),
         &len);
  }
  // The engine configuration as of start: models loaded later (admin socket, SIGHUP) get it too.
  const sn::daemon::DaemonConfig start_cfg = cfg;
  sn::daemon::ModelRegistry registry(
      [&start_cfg, &state_store = **state, &kv_mac_key](const std::string& id,
                                           const std::string& path) -> sn::Result<std::shared_ptr<sn::daemon::ModelHost>> {
        sn::daemon::notify_status("loading model " + id);
        sn::daemon::notify_extend_timeout(std::chrono::minutes(5));
        sn::daemon::log(LogLevel::kInfo, "loading model from " + path, {.model = id});
        const auto t0 = std::chrono::steady_clock::now();
        sn::daemon::ModelHostOptions options = host_options(start_cfg, id, path, kv_mac_key);
        // The KV identity: the catalog's sha256 of an imported file; else a fingerprint.
        if (sn::Result<std::vector<sn::storage::ModelRecord>> cat = state_store.list_models(); cat.ok()) {
          for (const sn::storage::ModelRecord& m : *cat) {
            if (m.path == path && !m.sha256.empty()) options.identity = "sha256:" + m.sha256;
          }
        }
        sn::Result<std::unique_ptr<sn::daemon::ModelHost>> h = sn::daemon::ModelHost::load(options);
        if (!h.ok()) return h.status();
        if ((*h)->chat_template() == nullptr) {
          sn::daemon::log(LogLevel::kWarning,
                          "serving completions only: " + (*h)->chat_template_status().to_string(), {.model = id});
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char took[64];
        std::snprintf(took, sizeof took, "serving the model (loaded in %.1f s)", s);
        sn::daemon::log(LogLevel::kInfo, took, {.model = id});
        return std::shared_ptr<sn::daemon::ModelHost>(std::move(*h));
      });
  std::set<std::string> from_config;  // ids that the config (or -m) asked for
  for (const sn::daemon::ModelConfig& m : cfg.models) {
    if (sn::Status s = registry.load(m.id, m.path); !s.is_ok()) return fail(s);
    from_config.insert(m.id);
  }
  // Catalog models loaded with `supernode models load` come back at every start.
  if (sn::Result<std::vector<sn::storage::ModelRecord>> cat = (*state)->list_models(); cat.ok()) {
    for (const sn::storage::ModelRecord& m : *cat) {
      sn::Result<std::optional<std::string>> on = (*state)->setting("models.autoload." + m.id);
      if (!on.ok() || !*on || **on != "1" || registry.find(m.id) != nullptr) continue;
      if (sn::Status s = registry.load(m.id, m.path); !s.is_ok()) {
        sn::daemon::log(LogLevel::kWarning, "catalog model not loaded: " + s.to_string(), {.model = m.id});
      }
    }
  }

  sn::daemon::ServerOptions so{.listen = listen,
                               .io_threads = cfg.server.io_threads,
                               .max_body_bytes = static_cast<size_t>(cfg.server.max_body_bytes),
                               .max_header_bytes = static_cast<size_t>(cfg.server.max_header_bytes),
                               .idle_timeout_s = cfg.server.idle_timeout_s};
  so.io_nice = cfg.server.io_nice;
  so.max_connections = cfg.server.max_connections;
  so.max_connections_per_address = cfg.server.max_connections_per_address;
  so.metrics_listen = cfg.metrics.listen;
  if (!activated.empty()) so.listen_fd = activated.front();
  if (!cfg.plain_http) {
    so.tls_cert = cfg.tls.cert;
    so.tls_key = cfg.tls.key;
    if (cfg.tls.self_signed) {
      if (sn::Status s = sn::daemon::ensure_self_signed_certificate(so.tls_cert, so.tls_key); !s.is_ok()) return fail(s);
    }
  }
  sn::daemon::Moderation moderation;
  if (sn::Result<std::vector<sn::storage::ModerationTerm>> terms = (*state)->list_moderation_terms(); terms.ok()) {
    moderation.set_terms(*terms);
  } else {
    return fail(terms.status());
  }
  const auto drain = std::chrono::seconds(cfg.server.drain_timeout_s);
  // The one admin service: the admin socket (the CLI) and the HTTP admin API (the web UI)
  // are its two transports.
  sn::daemon::AdminService admin_service({.models_dir = cfg.state_dir + "/models",
                                          .state_dir = cfg.state_dir,
                                          .drain = drain,
                                          .default_tenant_limits = default_limits,
                                          .kv_dirs = cfg.kv.disk_dirs,
                                          .import_roots = cfg.admin.import_dirs},
                                         **state, registry, moderation);
  so.admin_enabled = cfg.admin.enabled;
  so.admin_listen = cfg.admin.listen;
  so.admin_session_idle_s = cfg.admin.session_idle_timeout_s;
  so.version = SUPERNODE_VERSION;
  sn::daemon::Server server(so, **state, registry, moderation, &admin_service);
  if (sn::Status s = server.start(); !s.is_ok()) return fail(s);
  if (cfg.admin.enabled) {
    // First run: a one-time token in the state directory lets whoever can read it create
    // the first admin in the web UI. Its path is logged, never the token.
    sn::Result<std::string> token_path = admin_service.ensure_setup_token();
    if (!token_path.ok()) {
      sn::daemon::log(LogLevel::kWarning, "no setup token: " + token_path.status().to_string());
    } else if (!token_path->empty()) {
      sn::daemon::log(LogLevel::kInfo, "first-run setup: open the web UI and enter the token in " + *token_path);
    }
  }
  sn::daemon::AdminServer admin({.socket_path = cfg.admin_socket}, admin_service);
  if (sn::Status s = admin.start(); !s.is_ok()) {
    // The API serves without it; the admin CLI then says it cannot connect.
    sn::daemon::log(LogLevel::kWarning, "no admin socket: " + s.to_string());
  } else {
    sn::daemon::log(LogLevel::kInfo, "admin socket " + cfg.admin_socket);
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const char* scheme = cfg.plain_http ? "http" : "https";
  sn::daemon::log(LogLevel::kInfo, std::string("listening on ") + scheme + "://" + host + ":" +
                                       std::to_string(server.port()) + (activated.empty() ? "" : " (socket activation)") +
                                       "; OpenAI API under /v1, key in " + cfg.state_dir + "/initial-api-key");
  if (server.metrics_port() != 0) {
    const std::string mhost = cfg.metrics.listen.substr(0, cfg.metrics.listen.rfind(':'));
    sn::daemon::log(LogLevel::kInfo, "metrics on " + mhost + ":" + std::to_string(server.metrics_port()) + "/metrics");
    std::printf("metrics %s:%u\n", mhost.c_str(), server.metrics_port());
  }
  if (server.admin_port() != 0) {
    const std::string ahost = cfg.admin.listen.substr(0, cfg.admin.listen.rfind(':'));
    sn::daemon::log(LogLevel::kInfo, std::string("admin web UI on ") + scheme + "://" + ahost + ":" +
                                         std::to_string(server.admin_port()) + "/");
    std::printf("admin %s:%u\n", ahost.c_str(), server.admin_port());
  } else if (cfg.admin.enabled) {
    sn::daemon::log(LogLevel::kInfo, std::string("admin web UI on ") + scheme + "://" + host + ":" +
                                         std::to_string(server.port()) + "/");
  }
  // The tests and scripts read the bound port from this line.
  std::printf("listening %s:%u\n", host.c_str(), server.port());
  std::fflush(stdout);
  if (registry.list().empty() && registry.loading().empty()) {
    sn::daemon::log(LogLevel::kWarning, "no model is served yet: import one in the web UI (Models) or with "
                                        "`supernode models import PATH`, then load it");
  }
  sn::daemon::notify_ready("serving " + std::to_string(registry.list().size()) + " model(s) on " + host + ":" +
                           std::to_string(server.port()));

  // Watchdog: ping only while every engine either idles or has stepped since the last look.
  Stopper stopper;
  std::thread watchdog;
  if (std::optional<std::chrono::microseconds> every = sn::daemon::watchdog_interval()) {
    watchdog = std::thread([&registry, &stopper, period = *every / 2] {
      std::map<const sn::daemon::ModelHost*, uint64_t> last;
      while (!stopper.wait(period)) {
        bool healthy = true;
        std::map<const sn::daemon::ModelHost*, uint64_t> now;
        for (const std::shared_ptr<sn::daemon::ModelHost>& h : registry.list()) {
          const uint64_t p = h->progress();
          now[h.get()] = p;
          auto it = last.find(h.get());
          if (it != last.end() && it->second == p && h->in_flight() > 0) {
            healthy = false;
            sn::daemon::log(LogLevel::kError, "engine made no progress with requests in flight", {.model = h->id()});
          }
        }
        last.swap(now);
        if (healthy) sn::daemon::notify_watchdog();
      }
    });
  }

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    sn::daemon::notify_reloading();
    sn::Result<sn::daemon::DaemonConfig> fresh = sn::daemon::resolve_config(args);
    if (!fresh.ok()) {
      sn::daemon::log(LogLevel::kError, "reload refused, the running configuration stays: " + fresh.status().to_string());
      sn::daemon::notify_ready("serving (reload refused)");
      continue;
    }
    sn::daemon::set_log_level(fresh->log.level);
    sn::daemon::set_log_prompts(fresh->log.prompts);
    std::set<std::string> wanted;
    for (const sn::daemon::ModelConfig& m : fresh->models) {
      wanted.insert(m.id);
      if (registry.find(m.id) != nullptr && registry.path_of(m.id) == m.path) continue;
      if (registry.find(m.id) != nullptr) (void)registry.unload(m.id, drain);  // the file changed
      if (sn::Status s = registry.load(m.id, m.path); !s.is_ok()) {
        sn::daemon::log(LogLevel::kError, "reload: model not loaded: " + s.to_string(), {.model = m.id});
      }
    }
    for (const std::string& id : from_config) {
      if (wanted.count(id) == 0 && registry.find(id) != nullptr) {
        (void)registry.unload(id, drain);
        sn::daemon::log(LogLevel::kInfo, "reload: model unloaded (no longer configured)", {.model = id});
      }
    }
    from_config = wanted;
    if (fresh->listen != cfg.listen || fresh->plain_http != cfg.plain_http || fresh->tls.cert != cfg.tls.cert ||
        fresh->tls.key != cfg.tls.key || fresh->state_dir != cfg.state_dir || fresh->admin_socket != cfg.admin_socket ||
        fresh->engine.threads != cfg.engine.threads || fresh->engine.context != cfg.engine.context ||
        fresh->engine.max_seqs != cfg.engine.max_seqs || fresh->kv.host_mb != cfg.kv.host_mb ||
        fresh->kv.disk_mb != cfg.kv.disk_mb || fresh->kv.disk_dirs != cfg.kv.disk_dirs || fresh->kv.int8 != cfg.kv.int8) {
      sn::daemon::log(LogLevel::kWarning,
                      "reload: listen, TLS, state, engine and kv settings take effect at the next restart");
    }
    cfg.log = fresh->log;
    cfg.models = fresh->models;
    sn::daemon::log(LogLevel::kInfo, "configuration reloaded");
    sn::daemon::notify_ready("serving " + std::to_string(registry.list().size()) + " model(s) (reloaded)");
  }
  // Drain: no new completions (503), requests in flight finish (bounded), then stop.
  sn::daemon::notify_stopping();
  sn::daemon::log(LogLevel::kInfo, "signal " + std::to_string(sig) + ": draining (at most " +
                                       std::to_string(cfg.server.drain_timeout_s) + " s)");
  server.begin_drain();
  admin.stop();
  const auto drain_end = std::chrono::steady_clock::now() + drain;
  registry.drain_all(drain);
  // The engines are done; let the last responses reach their clients.
  (void)server.wait_idle(std::max(std::chrono::milliseconds(1000),
                                  std::chrono::duration_cast<std::chrono::milliseconds>(
                                      drain_end - std::chrono::steady_clock::now())));
  server.stop();
  stopper.request();
  if (watchdog.joinable()) watchdog.join();
  sn::daemon::log(LogLevel::kInfo, "stopped");
  return 0;
}
