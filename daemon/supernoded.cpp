// supernoded: the one daemon of the box. Opens the state store (creating tenant `default`
// and its first API key on an empty state directory, written to STATE_DIR/initial-api-key
// with mode 0600, never logged), loads the models given with -m (each served under its
// file stem), and serves the OpenAI-compatible API until SIGINT or SIGTERM.
// Interface (issue 5): supernoded [--listen HOST:PORT] [--state-dir DIR] [-m MODEL.gguf ...]
//                                 [--plain-http] [--tls-cert F --tls-key F] [--threads N] [--context N]
// HTTPS by default, with a self-signed certificate made at first start when none is given;
// plain HTTP only with --plain-http, and only on a loopback address.
#include <sys/stat.h>

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "supernode/base/args.h"
#include "supernode/daemon/admin.h"
#include "supernode/daemon/model_registry.h"
#include "supernode/daemon/server.h"
#include "supernode/daemon/tls.h"
#include "supernode/storage/state_store.h"

namespace {

int fail(const sn::Status& s, int code = 1) {
  std::fprintf(stderr, "supernoded: %s\n", s.to_string().c_str());
  return code;
}

bool is_loopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host == "127.0.0.1" || host == "[::1]" || host == "::1" || host.rfind("127.", 0) == 0 || host == "localhost";
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT and SIGTERM are blocked in every thread (threads inherit the mask) and taken by
  // the main thread with sigwait once serving.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  sn::Args args("supernoded", "[--listen HOST:PORT] [--state-dir DIR] [--admin-socket PATH] [-m MODEL.gguf ...] [--plain-http]",
                "The Supernode daemon: serves the OpenAI-compatible API over the models given with -m\n"
                "(each under its file stem as the model id). On first start with an empty state\n"
                "directory it creates tenant 'default' and one API key, written to\n"
                "STATE_DIR/initial-api-key (mode 0600).",
                {{{"--listen"}, "HOST:PORT", "address to serve on", "127.0.0.1:8080"},
                 {{"--state-dir"}, "DIR", "where the state database and KV cache live", "/var/lib/supernode"},
                 {{"--admin-socket"}, "PATH", "Unix socket of the admin CLI", "/run/supernode/admin.sock"},
                 {{"-m", "--model"}, "FILE", "a GGUF model to serve (repeatable)", ""},
                 {{"--plain-http"}, "", "serve plain HTTP (refused on a non-loopback address)", ""},
                 {{"--tls-cert"}, "FILE", "PEM certificate chain for HTTPS", "STATE_DIR/tls/cert.pem, self-signed at first start"},
                 {{"--tls-key"}, "FILE", "PEM private key of --tls-cert", "STATE_DIR/tls/key.pem"},
                 {{"-t", "--threads"}, "N", "compute threads per model", "one per physical core"},
                 {{"--context"}, "N", "longest prompt + completion per request, in tokens", "4096"},
                 {{"--max-seqs"}, "N", "requests computed together per model", "16"}});
  sn::Status parsed = args.parse(argc, argv, 1);
  if (args.help_requested()) {
    std::printf("%s", args.help_text().c_str());
    return 0;
  }
  if (!parsed.is_ok()) return fail(parsed, 2);
  if (!args.positional().empty()) {
    return fail(sn::Status::invalid_argument("supernoded", "unexpected argument '" + args.positional().front() + "'"), 2);
  }
  const std::string listen = args.str("--listen", "127.0.0.1:8080");
  const std::string state_dir = args.str("--state-dir", "/var/lib/supernode");
  sn::Result<long long> threads = args.integer("-t", 0, 0, 1024);
  sn::Result<long long> context = args.integer("--context", 4096, 16, 1 << 20);
  sn::Result<long long> max_seqs = args.integer("--max-seqs", 16, 1, 4096);
  for (const sn::Status* s : {&threads.status(), &context.status(), &max_seqs.status()}) {
    if (!s->is_ok()) return fail(*s, 2);
  }
  const bool plain = args.has("--plain-http");
  if (plain && !is_loopback(listen)) {
    return fail(sn::Status::invalid_argument("--plain-http", "refused on the non-loopback address " + listen), 2);
  }
  if (plain && (args.has("--tls-cert") || args.has("--tls-key"))) {
    return fail(sn::Status::invalid_argument("--plain-http", "cannot be combined with --tls-cert/--tls-key"), 2);
  }
  const std::vector<std::string> models = args.all("-m");

  std::error_code fs_ec;
  std::filesystem::create_directories(state_dir, fs_ec);
  if (fs_ec) return fail(sn::Status::io_error("state directory " + state_dir, fs_ec.message()));
  sn::Result<std::unique_ptr<sn::storage::StateStore>> state = sn::storage::StateStore::open(state_dir + "/state.db");
  if (!state.ok()) return fail(state.status());
  sn::Result<std::optional<sn::storage::NewApiKey>> first = (*state)->bootstrap();
  if (!first.ok()) return fail(first.status());
  if (*first) {
    const std::string key_path = state_dir + "/initial-api-key";
    {
      std::ofstream out(key_path, std::ios::trunc);
      out << (*first)->key << "\n";
      if (!out) return fail(sn::Status::io_error(key_path, "cannot write the initial API key"));
    }
    ::chmod(key_path.c_str(), 0600);
    std::fprintf(stderr, "supernoded: created tenant 'default' and API key %s; the key is in %s\n",
                 (*first)->record.key_id.c_str(), key_path.c_str());
  }

  sn::daemon::ModelHostOptions defaults;
  defaults.threads = static_cast<int>(*threads);
  defaults.context = static_cast<int32_t>(*context);
  defaults.max_seqs = static_cast<int32_t>(*max_seqs);
  sn::daemon::ModelRegistry registry(
      [&](const std::string& id, const std::string& path) -> sn::Result<std::shared_ptr<sn::daemon::ModelHost>> {
        sn::daemon::ModelHostOptions o = defaults;
        o.id = id;
        o.path = path;
        std::fprintf(stderr, "supernoded: loading model '%s' from %s\n", id.c_str(), path.c_str());
        sn::Result<std::unique_ptr<sn::daemon::ModelHost>> h = sn::daemon::ModelHost::load(o);
        if (!h.ok()) return h.status();
        std::fprintf(stderr, "supernoded: serving model '%s'\n", id.c_str());
        return std::shared_ptr<sn::daemon::ModelHost>(std::move(*h));
      });
  for (const std::string& path : models) {
    if (sn::Status s = registry.load(std::filesystem::path(path).stem().string(), path); !s.is_ok()) return fail(s);
  }
  // Catalog models loaded with `supernode models load` come back at every start.
  if (sn::Result<std::vector<sn::storage::ModelRecord>> cat = (*state)->list_models(); cat.ok()) {
    for (const sn::storage::ModelRecord& m : *cat) {
      sn::Result<std::optional<std::string>> on = (*state)->setting("models.autoload." + m.id);
      if (!on.ok() || !*on || **on != "1" || registry.find(m.id) != nullptr) continue;
      if (sn::Status s = registry.load(m.id, m.path); !s.is_ok()) {
        std::fprintf(stderr, "supernoded: warning: catalog model '%s' not loaded: %s\n", m.id.c_str(),
                     s.to_string().c_str());
      }
    }
  }

  sn::daemon::ServerOptions so{.listen = listen};
  if (!plain) {
    so.tls_cert = args.str("--tls-cert", state_dir + "/tls/cert.pem");
    so.tls_key = args.str("--tls-key", state_dir + "/tls/key.pem");
    if (!args.has("--tls-cert") && !args.has("--tls-key")) {
      if (sn::Status s = sn::daemon::ensure_self_signed_certificate(so.tls_cert, so.tls_key); !s.is_ok()) return fail(s);
    }
  }
  sn::daemon::Server server(so, **state, registry);
  if (sn::Status s = server.start(); !s.is_ok()) return fail(s);
  const std::string admin_path = args.str("--admin-socket", "/run/supernode/admin.sock");
  sn::daemon::AdminServer admin({.socket_path = admin_path, .models_dir = state_dir + "/models"}, **state, registry);
  if (sn::Status s = admin.start(); !s.is_ok()) {
    // The API serves without it; the admin CLI then says it cannot connect.
    std::fprintf(stderr, "supernoded: warning: no admin socket: %s\n", s.to_string().c_str());
  } else {
    std::fprintf(stderr, "supernoded: admin socket %s\n", admin_path.c_str());
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const char* scheme = plain ? "http" : "https";
  std::fprintf(stderr, "supernoded: listening on %s://%s:%u (OpenAI API under /v1; try:\n"
               "  curl %s%s://%s:%u/v1/models -H \"Authorization: Bearer $(cat %s/initial-api-key)\")\n",
               scheme, host.c_str(), server.port(), plain ? "" : ("--cacert " + so.tls_cert + " ").c_str(), scheme,
               host.c_str(), server.port(), state_dir.c_str());
  // The tests and scripts read the bound port from this line.
  std::printf("listening %s:%u\n", host.c_str(), server.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  // Drain: no new completions (503), requests in flight finish (bounded), then stop.
  std::fprintf(stderr, "supernoded: signal %d, draining\n", sig);
  server.begin_drain();
  admin.stop();
  registry.drain_all(std::chrono::seconds(30));
  server.stop();
  std::fprintf(stderr, "supernoded: stopped\n");
  return 0;
}
