// supernoded's configuration: a full file, the defaults, every kind of error (TOML syntax,
// wrong type, out of range, unknown key and section, bad enum, relative path) named by
// file, line and dotted key, flags over the file, the cross-checks (plain HTTP off
// loopback, plain HTTP with TLS, duplicate ids), and image/supernode.toml, the
// example shipped in the package, which must parse and state the defaults.
#include "supernode/daemon/config.h"

#include <string>
#include <vector>

#include "test_support.h"

#include <CppUTest/TestHarness.h>

using sn::daemon::DaemonConfig;
using sn::daemon::LogLevel;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The error message of parsing `text` as "test.toml"; "" when it parsed.
std::string parse_error(const std::string& text) {
  sn::Result<DaemonConfig> c = sn::daemon::parse_config(text, "test.toml");
  return c.ok() ? std::string() : c.status().message();
}

// Parses a supernoded command line (without argv[0]) with daemon_args().
struct CommandLine {
  explicit CommandLine(std::vector<std::string> a) : args(sn::daemon::daemon_args()), words(std::move(a)) {
    argv.push_back(const_cast<char*>("supernoded"));
    for (std::string& w : words) argv.push_back(w.data());
    status = args.parse(static_cast<int>(argv.size()), argv.data(), 1);
  }
  // resolve_config with a default config path that does not exist, so the host's
  // /etc/supernode cannot change the result.
  sn::Result<DaemonConfig> resolve(const std::string& default_config = "/nonexistent/supernode.toml") const {
    return sn::daemon::resolve_config(args, default_config);
  }
  sn::Args args;
  std::vector<std::string> words;
  std::vector<char*> argv;
  sn::Status status;
};

const char* const kFullFile = R"(# every key
listen = "0.0.0.0:8443"
state_dir = "/srv/supernode"
admin_socket = "/run/sn/admin.sock"
plain_http = false

[tls]
cert = "/etc/supernode/tls/cert.pem"
key = "/etc/supernode/tls/key.pem"

[[models]]
path = "/srv/models/llama-3.2-1b-q8_0.gguf"

[[models]]
path = "/srv/models/qwen.gguf"
id = "qwen3-4b"

[engine]
threads = 12
context = 8192
max_seqs = 32

[kv]
host_mb = 65536
disk_mb = 500000
disk_dirs = ["/mnt/nvme0/kv", "/mnt/nvme1/kv"]
int8 = true

[server]
io_threads = 4
max_body_bytes = 8388608
max_header_bytes = 32768
idle_timeout_s = 120
drain_timeout_s = 45

[admin]
listen = "127.0.0.1:9443"
session_idle_timeout_s = 600
import_dirs = ["/media/usb"]

[usage]
flush_ms = 250

[log]
level = "debug"
prompts = true
)";

}  // namespace

TEST_GROUP(Config){};

TEST(Config, FullFile) {
  sn::Result<DaemonConfig> r = sn::daemon::parse_config(kFullFile, "full.toml");
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  const DaemonConfig& c = *r;
  STRCMP_EQUAL("0.0.0.0:8443", c.listen.c_str());
  STRCMP_EQUAL("/srv/supernode", c.state_dir.c_str());
  STRCMP_EQUAL("/run/sn/admin.sock", c.admin_socket.c_str());
  CHECK_FALSE(c.plain_http);
  STRCMP_EQUAL("/etc/supernode/tls/cert.pem", c.tls.cert.c_str());
  STRCMP_EQUAL("/etc/supernode/tls/key.pem", c.tls.key.c_str());
  CHECK_FALSE(c.tls.self_signed);
  LONGS_EQUAL(2, c.models.size());
  STRCMP_EQUAL("llama-3.2-1b-q8_0", c.models[0].id.c_str());  // the file stem
  STRCMP_EQUAL("/srv/models/llama-3.2-1b-q8_0.gguf", c.models[0].path.c_str());
  STRCMP_EQUAL("qwen3-4b", c.models[1].id.c_str());
  LONGS_EQUAL(12, c.engine.threads);
  LONGS_EQUAL(8192, c.engine.context);
  LONGS_EQUAL(32, c.engine.max_seqs);
  LONGS_EQUAL(65536, c.kv.host_mb);
  LONGS_EQUAL(500000, c.kv.disk_mb);
  LONGS_EQUAL(2, c.kv.disk_dirs.size());
  STRCMP_EQUAL("/mnt/nvme1/kv", c.kv.disk_dirs[1].c_str());
  CHECK_TRUE(c.kv.int8);
  LONGS_EQUAL(4, c.server.io_threads);
  LONGS_EQUAL(8 << 20, c.server.max_body_bytes);
  LONGS_EQUAL(32 << 10, c.server.max_header_bytes);
  LONGS_EQUAL(120, c.server.idle_timeout_s);
  LONGS_EQUAL(45, c.server.drain_timeout_s);
  LONGS_EQUAL(250, c.usage.flush_ms);
  CHECK_TRUE(c.admin.enabled);
  STRCMP_EQUAL("127.0.0.1:9443", c.admin.listen.c_str());
  LONGS_EQUAL(600, c.admin.session_idle_timeout_s);
  LONGS_EQUAL(1, c.admin.import_dirs.size());
  CHECK_TRUE(c.log.level == LogLevel::kDebug);
  CHECK_TRUE(c.log.prompts);
}

TEST(Config, EmptyFileGivesTheDefaults) {
  sn::Result<DaemonConfig> r = sn::daemon::parse_config("# nothing\n", "empty.toml");
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  const DaemonConfig& c = *r;
  STRCMP_EQUAL("127.0.0.1:8080", c.listen.c_str());
  STRCMP_EQUAL("/var/lib/supernode", c.state_dir.c_str());
  STRCMP_EQUAL("/run/supernode/admin.sock", c.admin_socket.c_str());
  CHECK_TRUE(c.models.empty());
  CHECK_FALSE(c.plain_http);
  CHECK_TRUE(c.tls.self_signed);
  STRCMP_EQUAL("/var/lib/supernode/tls/cert.pem", c.tls.cert.c_str());
  STRCMP_EQUAL("/var/lib/supernode/tls/key.pem", c.tls.key.c_str());
  LONGS_EQUAL(0, c.engine.threads);
  LONGS_EQUAL(4096, c.engine.context);
  LONGS_EQUAL(16, c.engine.max_seqs);
  LONGS_EQUAL(1024, c.kv.host_mb);
  LONGS_EQUAL(8192, c.kv.disk_mb);
  LONGS_EQUAL(1, c.kv.disk_dirs.size());
  STRCMP_EQUAL("/var/lib/supernode/kv", c.kv.disk_dirs[0].c_str());
  CHECK_FALSE(c.kv.int8);
  LONGS_EQUAL(2, c.server.io_threads);
  LONGS_EQUAL(4 << 20, c.server.max_body_bytes);
  LONGS_EQUAL(16 << 10, c.server.max_header_bytes);
  LONGS_EQUAL(60, c.server.idle_timeout_s);
  LONGS_EQUAL(30, c.server.drain_timeout_s);
  LONGS_EQUAL(1000, c.usage.flush_ms);
  CHECK_TRUE(c.log.level == LogLevel::kInfo);
  CHECK_FALSE(c.log.prompts);
  // The KV directory follows state_dir when not given.
  sn::Result<DaemonConfig> moved = sn::daemon::parse_config("state_dir = \"/data/sn\"\n", "t.toml");
  CHECK_TRUE(moved.ok());
  STRCMP_EQUAL("/data/sn/kv", moved->kv.disk_dirs[0].c_str());
  STRCMP_EQUAL("/data/sn/tls/cert.pem", moved->tls.cert.c_str());
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  const std::string e = parse_error("listen = \"127.0.0.1:8080\"\n\n[kv\nhost_mb = 1\n");
  CHECK_TEXT(has(e, "test.toml:3:"), e.c_str());
  // toml++'s own description follows.
  CHECK_TEXT(e.size() > std::string("test.toml:3:1: ").size() + 5, e.c_str());
  const std::string dup = parse_error("[engine]\nthreads = 1\nthreads = 2\n");
  CHECK_TEXT(has(dup, "test.toml:3:"), dup.c_str());
}

TEST(Config, WrongTypeNamesLineAndKey) {
  const std::string e = parse_error("listen = \"127.0.0.1:8080\"\n[kv]\nint8 = false\nhost_mb = \"lots\"\n");
  STRCMP_EQUAL("test.toml:4: kv.host_mb: must be an integer between 0 and 1048576, got \"lots\"", e.c_str());
  const std::string b = parse_error("plain_http = 1\n");
  STRCMP_EQUAL("test.toml:1: plain_http: must be true or false, got 1", b.c_str());
  const std::string s = parse_error("\n\nstate_dir = 5\n");
  STRCMP_EQUAL("test.toml:3: state_dir: must be an absolute path, got 5", s.c_str());
  const std::string f = parse_error("[engine]\ncontext = 4096.0\n");
  CHECK_TEXT(has(f, "test.toml:2: engine.context: must be an integer between 16 and 1048576, got 4096"), f.c_str());
  const std::string t = parse_error("kv = 3\n");
  CHECK_TEXT(has(t, "test.toml:1: kv: must be a table"), t.c_str());
  const std::string m = parse_error("[models]\npath = \"/m.gguf\"\n");
  CHECK_TEXT(has(m, "test.toml:1: models: must be an array of tables"), m.c_str());
  const std::string d = parse_error("[kv]\ndisk_dirs = [\"/a\", 3]\n");
  CHECK_TEXT(has(d, "test.toml:2: kv.disk_dirs[1]: must be an absolute path, got 3"), d.c_str());
}

TEST(Config, OutOfRangeNamesLineAndKey) {
  const std::string e = parse_error("[engine]\n# comment\nmax_seqs = 0\n");
  STRCMP_EQUAL("test.toml:3: engine.max_seqs: must be an integer between 1 and 4096, got 0", e.c_str());
  const std::string big = parse_error("[server]\nmax_body_bytes = 99999999999\n");
  CHECK_TEXT(has(big, "test.toml:2: server.max_body_bytes: must be an integer between"), big.c_str());
  const std::string neg = parse_error("[kv]\ndisk_mb = -1\n");
  CHECK_TEXT(has(neg, "test.toml:2: kv.disk_mb:"), neg.c_str());
  const std::string port = parse_error("listen = \"127.0.0.1:70000\"\n");
  CHECK_TEXT(has(port, "test.toml:1: listen: must be HOST:PORT with a port from 0 to 65535, got \"127.0.0.1:70000\""),
             port.c_str());
}

TEST(Config, AdminSectionIsChecked) {
  const std::string idle = parse_error("[admin]\nsession_idle_timeout_s = 5\n");
  CHECK_TEXT(has(idle, "test.toml:2: admin.session_idle_timeout_s: must be an integer between 60"), idle.c_str());
  const std::string listen = parse_error("[admin]\nlisten = \"nowhere\"\n");
  CHECK_TEXT(has(listen, "test.toml:2:") && has(listen, "nowhere"), listen.c_str());
  const std::string same = parse_error("listen = \"127.0.0.1:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n");
  CHECK_TEXT(has(same, "admin.listen"), same.c_str());
  const std::string plain = parse_error("plain_http = true\n[admin]\nlisten = \"0.0.0.0:9000\"\n");
  CHECK_TEXT(has(plain, "non-loopback"), plain.c_str());
}

TEST(Config, UnknownKeyIsAnError) {
  const std::string e = parse_error("[kv]\nhost_mb = 1\nhots_mb = 2\n");
  CHECK_TEXT(has(e, "test.toml:3: kv.hots_mb: unknown key"), e.c_str());
  CHECK_TEXT(has(e, "host_mb"), e.c_str());  // lists the known keys
  const std::string top = parse_error("listne = \"127.0.0.1:1\"\n");
  CHECK_TEXT(has(top, "test.toml:1: listne: unknown key"), top.c_str());
  const std::string model = parse_error("[[models]]\npath = \"/m.gguf\"\nname = \"x\"\n");
  CHECK_TEXT(has(model, "test.toml:3: models[0].name: unknown key"), model.c_str());
}

TEST(Config, UnknownSectionIsAnError) {
  const std::string e = parse_error("listen = \"127.0.0.1:1\"\n\n[cache]\nsize = 1\n");
  CHECK_TEXT(has(e, "test.toml:3: cache: unknown section [cache]"), e.c_str());
}

TEST(Config, BadEnumNamesTheChoices) {
  const std::string e = parse_error("[log]\nlevel = \"verbose\"\n");
  STRCMP_EQUAL("test.toml:2: log.level: must be one of \"debug\", \"info\", \"warning\", \"error\", got \"verbose\"",
               e.c_str());
}

TEST(Config, PathsMustBeAbsoluteAndModelsNeedAPath) {
  const std::string e = parse_error("[[models]]\npath = \"models/x.gguf\"\n");
  CHECK_TEXT(has(e, "test.toml:2: models[0].path: must be an absolute path, got \"models/x.gguf\""), e.c_str());
  const std::string no_path = parse_error("[[models]]\nid = \"x\"\n");
  CHECK_TEXT(has(no_path, "test.toml:1: models[0]: path is required"), no_path.c_str());
  const std::string dup = parse_error("[[models]]\npath = \"/a/x.gguf\"\n[[models]]\npath = \"/b/x.gguf\"\n");
  CHECK_TEXT(has(dup, "two models have the id 'x'"), dup.c_str());
}

TEST(Config, PlainHttpOffLoopbackOrWithTlsIsRefused) {
  const std::string e = parse_error("listen = \"0.0.0.0:8080\"\nplain_http = true\n");
  STRCMP_EQUAL("test.toml:2: plain_http: refused on the non-loopback address 0.0.0.0:8080", e.c_str());
  const std::string tls = parse_error("plain_http = true\n[tls]\ncert = \"/c.pem\"\n");
  CHECK_TEXT(has(tls, "test.toml:1: plain_http: cannot be combined with [tls] cert (test.toml:3)"), tls.c_str());
  CHECK_TRUE(sn::daemon::parse_config("listen = \"127.0.0.1:8080\"\nplain_http = true\n", "t").ok());

  CommandLine cl({"--listen", "0.0.0.0:0", "--plain-http", "-m", "/m/a.gguf"});
  CHECK_TRUE(cl.status.is_ok());
  sn::Result<DaemonConfig> r = cl.resolve();
  CHECK_FALSE(r.ok());
  STRCMP_EQUAL("--plain-http: refused on the non-loopback address 0.0.0.0:0", r.status().message().c_str());
  CommandLine both({"--plain-http", "--tls-key", "/k.pem", "-m", "/m/a.gguf"});
  sn::Result<DaemonConfig> rb = both.resolve();
  CHECK_FALSE(rb.ok());
  CHECK_TEXT(has(rb.status().message(), "--plain-http: cannot be combined with --tls-key"), rb.status().message().c_str());
  CHECK_TRUE(sn::daemon::is_loopback("127.0.0.1:1"));
  CHECK_TRUE(sn::daemon::is_loopback("[::1]:1"));
  CHECK_TRUE(sn::daemon::is_loopback("localhost:1"));
  CHECK_FALSE(sn::daemon::is_loopback("10.0.0.1:1"));
  CHECK_FALSE(sn::daemon::is_loopback("[::]:1"));
}

TEST(Config, FlagsAloneMatchTheOldCommandLine) {
  CommandLine cl({"--listen", "127.0.0.1:0", "--state-dir", "st", "-m", "a/tiny.gguf", "-t", "2", "--context", "512",
                  "--plain-http"});
  CHECK_TRUE(cl.status.is_ok());
  sn::Result<DaemonConfig> r = cl.resolve();
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  STRCMP_EQUAL("127.0.0.1:0", r->listen.c_str());
  STRCMP_EQUAL("st", r->state_dir.c_str());
  LONGS_EQUAL(1, r->models.size());
  STRCMP_EQUAL("tiny", r->models[0].id.c_str());
  STRCMP_EQUAL("a/tiny.gguf", r->models[0].path.c_str());
  LONGS_EQUAL(2, r->engine.threads);
  LONGS_EQUAL(512, r->engine.context);
  LONGS_EQUAL(16, r->engine.max_seqs);
  CHECK_TRUE(r->plain_http);
  CHECK_TRUE(r->tls.cert.empty());
  STRCMP_EQUAL("st/kv", r->kv.disk_dirs[0].c_str());
  CHECK_TRUE(r->config_file.empty());

  CommandLine none({"--listen", "127.0.0.1:0"});
  sn::Result<DaemonConfig> nm = none.resolve();
  // No model: a new box starts empty and its admin imports one.
  CHECK_TEXT(nm.ok(), nm.status().to_string().c_str());
  LONGS_EQUAL(0, nm->models.size());
  CommandLine bad({"-m", "/a.gguf", "--context", "8"});
  sn::Result<DaemonConfig> bc = bad.resolve();
  CHECK_FALSE(bc.ok());
  CHECK_TEXT(has(bc.status().message(), "'--context' is 8, must be in [16, 1048576]"), bc.status().message().c_str());
  CommandLine level({"-m", "/a.gguf", "--log-level", "loud"});
  sn::Result<DaemonConfig> lc = level.resolve();
  CHECK_FALSE(lc.ok());
  CHECK_TEXT(has(lc.status().message(), "'--log-level'"), lc.status().message().c_str());
  CommandLine unknown({"--kv-hostmb", "1"});
  CHECK_FALSE(unknown.status.is_ok());
}

TEST(Config, EveryFlagIsKnownAndApplied) {
  const std::string help = sn::daemon::daemon_args().help_text();
  for (const char* flag : {"--config", "--listen", "--state-dir", "--admin-socket", "--model", "--plain-http", "--tls-cert",
                           "--tls-key", "--threads", "--context", "--max-seqs", "--kv-host-mb", "--kv-disk-mb", "--kv-int8",
                           "--log-level", "--log-prompts"}) {
    CHECK_TEXT(has(help, flag), flag);
  }
  CommandLine cl({"--model", "/m/a.gguf", "--model=/m/b.gguf", "--threads", "3", "--max-seqs", "64", "--admin-socket",
                  "/tmp/a.sock", "--kv-int8", "--log-prompts", "--log-level", "error", "--tls-cert", "/c.pem"});
  CHECK_TEXT(cl.status.is_ok(), cl.status.to_string().c_str());
  sn::Result<DaemonConfig> r = cl.resolve();
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  LONGS_EQUAL(2, r->models.size());
  STRCMP_EQUAL("b", r->models[1].id.c_str());
  LONGS_EQUAL(3, r->engine.threads);
  LONGS_EQUAL(64, r->engine.max_seqs);
  STRCMP_EQUAL("/tmp/a.sock", r->admin_socket.c_str());
  CHECK_TRUE(r->kv.int8);
  CHECK_TRUE(r->log.prompts);
  CHECK_TRUE(r->log.level == LogLevel::kError);
  // One of the pair given: the other keeps its default and nothing is self-signed.
  STRCMP_EQUAL("/c.pem", r->tls.cert.c_str());
  STRCMP_EQUAL("/var/lib/supernode/tls/key.pem", r->tls.key.c_str());
  CHECK_FALSE(r->tls.self_signed);
  CommandLine dup({"-m", "/a/x.gguf", "-m", "/b/x.gguf"});
  sn::Result<DaemonConfig> d = dup.resolve();
  CHECK_FALSE(d.ok());
  CHECK_TEXT(has(d.status().message(), "-m: two models have the id 'x'"), d.status().message().c_str());
}

TEST(Config, FlagsOverrideTheFile) {
  sn::testing::TempDir dir;
  const std::string path = dir.file("supernode.toml");
  sn::testing::write_file(path, kFullFile);
  CommandLine cl({"--config", path, "--listen", "10.1.2.3:9000", "-m", "/other/phi.gguf", "--context", "2048",
                  "--kv-host-mb", "0", "--kv-disk-mb", "100", "--log-level", "warning", "--state-dir", "/elsewhere"});
  CHECK_TRUE(cl.status.is_ok());
  sn::Result<DaemonConfig> r = cl.resolve();
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  STRCMP_EQUAL(path.c_str(), r->config_file.c_str());
  STRCMP_EQUAL("10.1.2.3:9000", r->listen.c_str());
  LONGS_EQUAL(1, r->models.size());  // -m replaces the file's models
  STRCMP_EQUAL("phi", r->models[0].id.c_str());
  LONGS_EQUAL(2048, r->engine.context);
  LONGS_EQUAL(12, r->engine.threads);  // from the file
  LONGS_EQUAL(0, r->kv.host_mb);
  LONGS_EQUAL(100, r->kv.disk_mb);
  STRCMP_EQUAL("/mnt/nvme0/kv", r->kv.disk_dirs[0].c_str());  // given in the file: kept
  CHECK_TRUE(r->log.level == LogLevel::kWarning);
  STRCMP_EQUAL("/elsewhere", r->state_dir.c_str());
  STRCMP_EQUAL("/etc/supernode/tls/cert.pem", r->tls.cert.c_str());

  // The default config path is read when it exists, and only then.
  CommandLine dflt({"--context", "1024"});
  sn::Result<DaemonConfig> d = dflt.resolve(path);
  CHECK_TEXT(d.ok(), d.status().to_string().c_str());
  LONGS_EQUAL(2, d->models.size());
  LONGS_EQUAL(1024, d->engine.context);
  CommandLine missing({"--config", dir.file("absent.toml"), "-m", "/a.gguf"});
  sn::Result<DaemonConfig> m = missing.resolve();
  CHECK_FALSE(m.ok());
  CHECK_TRUE(m.status().code() == sn::Status::Code::kNotFound);
  CHECK_TEXT(has(m.status().message(), "absent.toml"), m.status().message().c_str());

  // Errors of the file read through --config name its path and line.
  const std::string bad_path = dir.file("bad.toml");
  sn::testing::write_file(bad_path, "[log]\nlevel = \"loud\"\n");
  CommandLine bad({"--config", bad_path, "-m", "/a.gguf"});
  sn::Result<DaemonConfig> b = bad.resolve();
  CHECK_FALSE(b.ok());
  CHECK_TEXT(has(b.status().message(), bad_path + ":2: log.level:"), b.status().message().c_str());

  // --plain-http over a file with [tls] names both.
  CommandLine plain({"--config", path, "--listen", "127.0.0.1:0", "--plain-http"});
  sn::Result<DaemonConfig> p = plain.resolve();
  CHECK_FALSE(p.ok());
  CHECK_TEXT(has(p.status().message(), "--plain-http: cannot be combined with [tls] cert (" + path + ":8)"),
             p.status().message().c_str());
}

TEST(Config, ShippedExampleParsesAndStatesTheDefaults) {
  const std::string path = std::string(SN_SOURCE_DIR) + "/image/supernode.toml";
  sn::Result<DaemonConfig> r = sn::daemon::load_config_file(path);
  CHECK_TEXT(r.ok(), r.status().to_string().c_str());
  sn::Result<DaemonConfig> defaults = sn::daemon::parse_config("", "empty");
  CHECK_TRUE(defaults.ok());
  const DaemonConfig& c = *r;
  const DaemonConfig& d = *defaults;
  STRCMP_EQUAL(d.listen.c_str(), c.listen.c_str());
  STRCMP_EQUAL(d.state_dir.c_str(), c.state_dir.c_str());
  STRCMP_EQUAL(d.admin_socket.c_str(), c.admin_socket.c_str());
  CHECK_EQUAL(d.plain_http, c.plain_http);
  CHECK_TRUE(c.models.empty());  // left to the site
  LONGS_EQUAL(d.engine.threads, c.engine.threads);
  LONGS_EQUAL(d.engine.context, c.engine.context);
  LONGS_EQUAL(d.engine.max_seqs, c.engine.max_seqs);
  LONGS_EQUAL(d.kv.host_mb, c.kv.host_mb);
  LONGS_EQUAL(d.kv.disk_mb, c.kv.disk_mb);
  CHECK_TRUE(d.kv.disk_dirs == c.kv.disk_dirs);
  CHECK_EQUAL(d.kv.int8, c.kv.int8);
  LONGS_EQUAL(d.server.io_threads, c.server.io_threads);
  LONGS_EQUAL(d.server.max_body_bytes, c.server.max_body_bytes);
  LONGS_EQUAL(d.server.max_header_bytes, c.server.max_header_bytes);
  LONGS_EQUAL(d.server.idle_timeout_s, c.server.idle_timeout_s);
  LONGS_EQUAL(d.server.drain_timeout_s, c.server.drain_timeout_s);
  LONGS_EQUAL(d.usage.flush_ms, c.usage.flush_ms);
  CHECK_TRUE(d.log.level == c.log.level);
  CHECK_EQUAL(d.log.prompts, c.log.prompts);
}
