// The daemon against hostile or careless clients (issue 11's findings), each against the real
// supernoded on 127.0.0.1 with a generated model: deep JSON nesting, under-billed TPM,
// generation for free by hanging up, a tenant's model list, metrics kept from tenants'
// keys, authentication before the body, connection caps, invalid UTF-8 in an echoed path,
// queue shares per tenant, n counted as n requests in flight, limits on stop strings, and
// default quotas for the first tenant. Every test ends by checking that the daemon serves.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "supernode/storage/state_store.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

#include "daemon_harness.h"

namespace {

using namespace sn::testing::daemon;

// A tenant and a key made in the state store before the daemon starts (creating the store,
// tenant "default" and its key file first when the store is new).
std::string make_key(const std::string& state_dir, const std::string& tenant, const sn::storage::Limits& tenant_limits,
                     const sn::storage::Limits& key_limits = {}) {
  sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(state_dir + "/state.db");
  if (!st.ok()) return "";
  // The daemon bootstraps only an empty store: make its first key here, where it would.
  sn::Result<std::optional<sn::storage::NewApiKey>> first = (*st)->bootstrap();
  if (first.ok() && *first) sn::testing::write_file(state_dir + "/initial-api-key", (*first)->key + "\n");
  if (!(*st)->find_tenant(tenant).ok() || !*(*st)->find_tenant(tenant)) {
    if (!(*st)->create_tenant(tenant, tenant_limits, "test").ok()) return "";
  }
  sn::Result<sn::storage::NewApiKey> k = (*st)->create_key(tenant, key_limits, "test", "test");
  return k.ok() ? k->key : "";
}

// Usage of `tenant` as the daemon flushed it: {requests, prompt tokens, completion tokens}.
struct Usage {
  int64_t requests = 0, prompt = 0, completion = 0;
};
Usage usage_of(const std::string& state_dir, const std::string& tenant) {
  Usage u;
  sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(state_dir + "/state.db");
  if (!st.ok()) return u;
  sn::Result<std::vector<sn::storage::UsageRow>> rows = (*st)->usage(0, tenant);
  if (!rows.ok()) return u;
  for (const sn::storage::UsageRow& r : *rows) {
    u.requests += r.requests;
    u.prompt += r.prompt_tokens;
    u.completion += r.completion_tokens;
  }
  return u;
}

// Reads from `fd` until the peer closes or `timeout` passes; what arrived.
std::string read_all(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = 0;
  tv.tv_usec = 100000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buf[8192];
  while (std::chrono::steady_clock::now() < end) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void send_text(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

TEST_GROUP(Hardening) {
  std::unique_ptr<sn::testing::TempDir> dir;
  std::string model;
  void setup() override {
    dir = std::make_unique<sn::testing::TempDir>();
    model = make_chat_model(*dir);  // ChatML-style template: chat works
  }
  void teardown() override { dir.reset(); }

  // A model big enough that 500 tokens take most of a second (the tiny one takes 60 ms),
  // for tests that must act while a request generates.
  std::string slow_model() {
    const std::string path = dir->file("slow.gguf");
    run_out(sn::testing::bin_dir() + "/supernode gen-model -o " + path + " --embd 512 --layers 4 --ff 2048 2>/dev/null");
    return path;
  }

  static void check_serving(const Daemon& d, const std::string& key) {
    const HttpReply r = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})", key);
    LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  }
  // A config file with `text` and the usual test settings.
  std::string config(const std::string& text) {
    const std::string path = dir->file("extra.toml");
    sn::testing::write_file(path, "[kv]\nhost_mb = 0\n" + text);
    return path;
  }
};

// Regression: a million nested '[' in a message (2 MB) overflowed an I/O thread's stack
// while the request was converted for the template: the daemon died for every tenant.
TEST(Hardening, DeeplyNestedJsonIsRefusedBeforeAnythingRecurses) {
  Daemon d(model, dir->file("state"));
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  const std::string in_message = R"({"model":"tiny","messages":[{"role":"user","content":"x","extra":)" + deep + "}]}";
  HttpReply r = http(d.port(), "POST", "/v1/chat/completions", in_message, d.key());
  LONGS_EQUAL_TEXT(400, r.status, r.body.substr(0, 300).c_str());
  CHECK_TRUE(has(r.body, "nests arrays or objects deeper than 64"));
  const std::string in_tools = R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":)" + deep + "}";
  LONGS_EQUAL(400, http(d.port(), "POST", "/v1/chat/completions", in_tools, d.key()).status);
  // Nesting inside strings is text, not structure.
  const std::string quoted = R"({"model":"tiny","messages":[{"role":"user","content":")" + std::string(200, '[') + R"("}],"max_tokens":2})";
  LONGS_EQUAL(200, http(d.port(), "POST", "/v1/chat/completions", quoted, d.key()).status);
  check_serving(d, d.key());
}

// Regression: with n x max_tokens over the tenant's TPM the reservation was capped and the
// cap refunded whole at the end: such requests were charged nothing.
TEST(Hardening, TpmChargesEveryTokenUsed) {
  const std::string state = dir->file("state");
  std::filesystem::create_directories(state);
  const std::string key = make_key(state, "small", {.tpm = 100});
  CHECK_FALSE(key.empty());
  Daemon d(model, state);
  const std::string big = R"({"model":"tiny","prompt":"hello","max_tokens":64,"n":4,"ignore_eos":true})";
  HttpReply a = http(d.port(), "POST", "/v1/completions", big, key);
  LONGS_EQUAL_TEXT(200, a.status, a.body.c_str());
  CHECK_TRUE(has(a.body, "\"completion_tokens\":256"));
  // 256 + prompt tokens used of 100 a minute: the tenant is in debt for about 97 s (less
  // what refilled while the first request generated: seconds on a loaded machine).
  HttpReply b = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hello","max_tokens":1})", key);
  LONGS_EQUAL_TEXT(429, b.status, b.body.c_str());
  CHECK_TRUE(has(b.body, "tokens per minute of tenant:small"));
  const size_t at = b.headers.find("Retry-After: ");
  CHECK_TRUE(at != std::string::npos);
  CHECK_TRUE(std::atoi(b.headers.c_str() + at + 13) >= 60);
}

// Regression: a client that closed its connection (or a request that failed) after tokens
// were generated left no usage row and its reservation was refunded: generation for free.
TEST(Hardening, AClientThatHangsUpIsStillMetered) {
  const std::string state = dir->file("state");
  std::filesystem::create_directories(state);
  const std::string key = make_key(state, "leaver", {});
  Daemon d(slow_model(), state);
  // Non-streaming: hang up while it generates.
  int fd = send_completion(d.port(), key, R"({"model":"slow","prompt":"hello","max_tokens":500,"ignore_eos":true})");
  CHECK_TRUE(fd >= 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  ::close(fd);
  // Streaming: read a few chunks, then hang up.
  fd = send_completion(d.port(), key, R"({"model":"slow","prompt":"hello","max_tokens":500,"ignore_eos":true,"stream":true})");
  const std::string seen = read_all(fd, std::chrono::milliseconds(250));
  ::close(fd);
  size_t chunks = 0;
  for (size_t p = 0; (p = seen.find("data: {", p)) != std::string::npos; ++p) ++chunks;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // cancelled, then flushed (1 s)
  LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", R"({"model":"slow","prompt":"hi","max_tokens":2})", d.key()).status);
  const Usage u = usage_of(state, "leaver");
  LONGS_EQUAL(2, u.requests);
  CHECK_TRUE(u.prompt > 0);
  // Both ended early (500 + 500 would mean they ran to the end: nothing was tested).
  CHECK_TEXT(u.completion >= static_cast<int64_t>(chunks) && u.completion > 0 && u.completion < 1000,
             ("completion tokens metered: " + std::to_string(u.completion) + ", chunks seen " + std::to_string(chunks)).c_str());
}

// Regression: only the key's allowed-models list was applied, so a key without one could use
// every model whatever its tenant's list said.
TEST(Hardening, TheTenantsModelListApplies) {
  const std::string state = dir->file("state");
  std::filesystem::create_directories(state);
  const std::string key = make_key(state, "narrow", {.models = {"some-other-model"}});
  Daemon d(model, state);
  HttpReply m = http(d.port(), "GET", "/v1/models", "", key);
  LONGS_EQUAL(200, m.status);
  CHECK_FALSE(has(m.body, "\"tiny\""));
  HttpReply c = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})", key);
  LONGS_EQUAL(404, c.status);
  CHECK_TRUE(has(c.body, "model_not_found"));
  check_serving(d, d.key());
}

// Regression: the body was read (up to 4 MiB) before the key was checked, by anyone.
TEST(Hardening, TheKeyIsCheckedBeforeTheBodyIsRead) {
  Daemon d(model, dir->file("state"));
  for (const std::string& auth : {std::string(), std::string("Authorization: Bearer sk-sn-nope\r\n")}) {
    const int fd = connect_local(d.port());
    send_text(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 4000000\r\n\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    const std::string reply = read_all(fd, std::chrono::milliseconds(5000));
    const auto waited = std::chrono::steady_clock::now() - t0;
    ::close(fd);
    CHECK_TEXT(reply.rfind("HTTP/1.1 401", 0) == 0, reply.c_str());
    CHECK_TRUE(has(reply, "invalid_api_key"));
    CHECK_TRUE(waited < std::chrono::milliseconds(4000));  // answered without the body; closed soon after
  }
  // A declared body over the limit is refused on its headers too, key or not.
  const int fd = connect_local(d.port());
  send_text(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + d.key() +
                    "\r\nContent-Length: 999999999\r\n\r\n");
  const std::string reply = read_all(fd, std::chrono::milliseconds(5000));
  ::close(fd);
  CHECK_TEXT(reply.rfind("HTTP/1.1 413", 0) == 0, reply.c_str());
  check_serving(d, d.key());
}

// Regression: no connection cap existed (and EMFILE made the accept loop spin).
TEST(Hardening, ConnectionsAreCappedPerAddress) {
  Daemon d(model, dir->file("state"), false,
           {"--config", config("[server]\nmax_connections_per_address = 8\nidle_timeout_s = 30\n")});
  std::vector<int> held;
  for (int i = 0; i < 8; ++i) held.push_back(connect_local(d.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int over = connect_local(d.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  send_text(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string got = read_all(over, std::chrono::milliseconds(2000));
  ::close(over);
  CHECK_TEXT(got.empty(), got.c_str());  // closed at once, unanswered
  // One of the held ones is served.
  send_text(held[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_TRUE(read_all(held[0], std::chrono::milliseconds(300)).rfind("HTTP/1.1 200", 0) == 0);
  for (int fd : held) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  check_serving(d, d.key());
}

// Regression: an error message holding invalid UTF-8 (an echoed path) threw while the JSON
// was serialized, inside a detached coroutine: the client got no answer at all.
TEST(Hardening, InvalidUtf8InAnEchoedPathStillGetsAnAnswer) {
  Daemon d(model, dir->file("state"));
  for (const std::string& key : {std::string(), d.key()}) {
    HttpReply r = http(d.port(), "GET", "/v1/\xff\xfe\x80", "", key);
    LONGS_EQUAL(404, r.status);
    CHECK_TRUE(has(r.body, "\"error\":{"));
    CHECK_TRUE(has(r.body, "\xef\xbf\xbd"));  // U+FFFD in place of the bad bytes
  }
  check_serving(d, d.key());
}

// Regression: one tenant could fill a model's whole waiting queue.
TEST(Hardening, ATenantHoldsOnlyItsShareOfTheQueue) {
  const std::string state = dir->file("state");
  std::filesystem::create_directories(state);
  const std::string hog = make_key(state, "hog", {});
  const std::string other = make_key(state, "other", {});
  Daemon d(slow_model(), state, false, {"--config", config("[engine]\nmax_seqs = 1\nmax_waiting_per_tenant = 1\n")});
  const std::string slow = R"({"model":"slow","prompt":"hello","max_tokens":500,"ignore_eos":true,"stream":true})";
  std::vector<int> fds;
  // One running, one waiting: its share. (Sent back to back: the tiny model is fast.)
  for (int i = 0; i < 2; ++i) fds.push_back(send_completion(d.port(), hog, slow));
  for (int fd : fds) CHECK_TRUE(read_all(fd, std::chrono::milliseconds(50)).rfind("HTTP/1.1 200", 0) == 0);
  HttpReply third = http(d.port(), "POST", "/v1/completions", slow, hog);
  LONGS_EQUAL_TEXT(429, third.status, third.body.c_str());
  CHECK_TRUE(has(third.body, "its share"));
  // Another tenant still gets in (it waits behind the hog's running request).
  const int theirs = send_completion(d.port(), other, R"({"model":"slow","prompt":"hi","max_tokens":2,"stream":true})");
  const std::string got = read_all(theirs, std::chrono::milliseconds(1500));
  ::close(theirs);
  CHECK_TEXT(got.rfind("HTTP/1.1 200", 0) == 0, got.substr(0, 200).c_str());
  for (int fd : fds) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", R"({"model":"slow","prompt":"hi","max_tokens":2})", d.key()).status);
}

// Regression: `n` counted as one request against the concurrency limit.
TEST(Hardening, EachChoiceCountsAgainstConcurrency) {
  const std::string state = dir->file("state");
  std::filesystem::create_directories(state);
  const std::string key = make_key(state, "pair", {.concurrency = 2});
  Daemon d(model, state);
  HttpReply r = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2,"n":3})", key);
  LONGS_EQUAL_TEXT(429, r.status, r.body.c_str());
  CHECK_TRUE(has(r.body, "one per choice"));
  LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2,"n":2})", key).status);
}

// Regression: stop strings were unbounded in length (each is matched against every token).
TEST(Hardening, StopStringsAreBounded) {
  Daemon d(model, dir->file("state"));
  const std::string longstop = R"({"model":"tiny","prompt":"hi","stop":")" + std::string(300, 'x') + R"("})";
  HttpReply a = http(d.port(), "POST", "/v1/completions", longstop, d.key());
  LONGS_EQUAL(400, a.status);
  CHECK_TRUE(has(a.body, "\"param\":\"stop\""));
  HttpReply b = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","stop":["a","b","c","d","e"]})", d.key());
  LONGS_EQUAL(400, b.status);
  check_serving(d, d.key());
}

// Regression: the bootstrap tenant (and tenants made without limits) had no quota at all.
TEST(Hardening, TheFirstTenantGetsTheDefaultQuotas) {
  Daemon d(model, dir->file("state"), false,
           {"--config", config("[quotas]\ndefault_rpm = 3\ndefault_tpm = 0\ndefault_concurrency = 0\n")});
  for (int i = 0; i < 3; ++i) check_serving(d, d.key());
  HttpReply r = http(d.port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})", d.key());
  LONGS_EQUAL(429, r.status);
  CHECK_TRUE(has(r.body, "requests per minute of tenant:default"));
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  (void)run_out(cli + "tenants create fresh 2>&1");
  CHECK_TRUE(has(run_out(cli + "tenants list 2>&1"), "fresh"));
}

// Regression: a model's identity in the KV block store was `id@path`, so the disk tier
// served a removed model's blocks to a different model imported under the same id.
TEST(Hardening, TheDiskTierNeverServesAnotherModelsBlocksUnderTheSameId) {
  Daemon d(model, dir->file("state"), false, {"--kv-host-mb", "16", "--kv-disk-mb", "64"});
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  const std::string other = dir->file("other.gguf");
  run_out(sn::testing::bin_dir() + "/supernode gen-model -o " + other + " --seed 7 2>/dev/null");
  const std::string body = R"({"model":"m","prompt":")" + std::string(300, 'a') + R"(","max_tokens":2,"temperature":0})";
  auto cached = [&] {
    HttpReply r = http(d.port(), "POST", "/v1/completions", body, d.key());
    const size_t at = r.body.find("\"cached_tokens\":");
    return at == std::string::npos ? -1 : std::atoi(r.body.c_str() + at + 16);
  };
  CHECK_TRUE(has(run_out(cli + "models import " + model + " --id m 2>&1"), "sha256"));
  CHECK_TRUE(has(run_out(cli + "models load m 2>&1"), "loaded m"));
  LONGS_EQUAL(0, cached());
  CHECK_TRUE(cached() > 0);  // the same model finds its prefix
  CHECK_TRUE(has(run_out(cli + "models unload m && " + cli + "models remove m 2>&1"), "removed m"));  // blocks stay on disk
  CHECK_TRUE(has(run_out(cli + "models import " + other + " --id m 2>&1"), "sha256"));
  CHECK_TRUE(has(run_out(cli + "models load m 2>&1"), "loaded m"));
  LONGS_EQUAL(0, cached());  // another file under the same id: nothing from the old one's blocks
}

// Fault: the model file is truncated (or replaced) while the daemon serves it: the weights
// were read in at load, so serving goes on; a reload of that file then fails cleanly.
TEST(Hardening, AModelFileTruncatedWhileServingDoesNotStopTheDaemon) {
  const std::string copy = dir->file("victim.gguf");
  std::filesystem::copy_file(model, copy);
  Daemon d(copy, dir->file("state"));
  const std::string body = R"({"model":"victim","prompt":"hello","max_tokens":8,"temperature":0})";
  HttpReply before = http(d.port(), "POST", "/v1/completions", body, d.key());
  LONGS_EQUAL(200, before.status);
  std::filesystem::resize_file(copy, 1000);
  for (int i = 0; i < 3; ++i) {
    HttpReply r = http(d.port(), "POST", "/v1/completions", body, d.key());
    LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
    const size_t a = before.body.find("\"choices\""), b = r.body.find("\"choices\"");
    CHECK_TRUE(a != std::string::npos && b != std::string::npos);
    CHECK_EQUAL(before.body.substr(a), r.body.substr(b));  // same greedy answer from the loaded weights
  }
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  CHECK_TRUE(has(run_out(cli + "models import " + copy + " --id again 2>&1; echo rc=$?"), "rc=1"));
  LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", body, d.key()).status);
}

namespace {

// A small tmpfs of the test's own (root only: others skip), unmounted by the destructor.
struct SmallDisk {
  std::string path;
  bool mounted = false;
  SmallDisk(const std::string& at, const std::string& size) : path(at) {
    std::filesystem::create_directories(path);
    mounted = std::system(("mount -t tmpfs -o size=" + size + " tmpfs " + path + " 2>/dev/null").c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted) (void)std::system(("umount -l " + path).c_str());
  }
  // Fills what is left with one file; false when nothing could be written.
  bool fill(const std::string& name) const {
    FILE* f = std::fopen((path + "/" + name).c_str(), "w");
    if (f == nullptr) return false;
    std::string chunk(64 << 10, 'x');
    size_t written = 0;
    while (std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size()) written += chunk.size();
    std::fclose(f);
    return written > 0;
  }
};

}  // namespace

// Fault: the disk under the state database fills while the daemon serves: requests go on
// (usage is buffered), flushes fail and give their counts back, and once space returns every
// token is written; the audit chain still verifies.
TEST(Hardening, AFullDiskUnderTheStateDatabaseLosesNoUsage) {
  SmallDisk disk(dir->file("small"), "8m");
  if (!disk.mounted) {
    sn::testing::skip("mounting a tmpfs needs root: the full-disk test did not run");
    return;
  }
  const std::string state = disk.path + "/state";
  {
    Daemon d(model, state);
    CHECK_TRUE(d.port() != 0);
    check_serving(d, d.key());  // 1 request, 2 tokens, written now
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK_TRUE(disk.fill("junk"));
    const std::string body = R"({"model":"tiny","prompt":"hello there","max_tokens":8,"ignore_eos":true})";
    for (int i = 0; i < 5; ++i) LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", body, d.key()).status);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // flushes meet the full disk
    check_serving(d, d.key());
    std::filesystem::remove(disk.path + "/junk");
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // space is back: written
  }
  sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(state + "/state.db");
  CHECK_TRUE_TEXT(st.ok(), st.status().to_string().c_str());
  int64_t requests = 0, completion = 0;
  sn::Result<std::vector<sn::storage::UsageRow>> rows = (*st)->usage(0);
  CHECK_TRUE(rows.ok());
  for (const sn::storage::UsageRow& u : *rows) {
    requests += u.requests;
    completion += u.completion_tokens;
  }
  LONGS_EQUAL(7, requests);
  LONGS_EQUAL(2 + 5 * 8 + 2, completion);
}

// Fault: the disk of the KV cache's disk tier fills while the daemon serves: block writes
// fail and that directory pauses, requests keep being answered (the tier is a cache, never
// a dependency), and the daemon goes on serving once space returns.
TEST(Hardening, AFullKvDiskTierKeepsServing) {
  SmallDisk disk(dir->file("kvdisk"), "16m");
  if (!disk.mounted) {
    sn::testing::skip("mounting a tmpfs needs root: the full KV disk test did not run");
    return;
  }
  const std::string kv = disk.path + "/kv";
  std::filesystem::create_directories(kv);
  // Only one host-RAM MiB: prefixes go on to disk quickly.
  const std::string cfg = dir->file("kv.toml");
  sn::testing::write_file(cfg, "[kv]\nhost_mb = 1\ndisk_mb = 64\ndisk_dirs = [\"" + kv + "\"]\n");
  Daemon d(model, dir->file("state"), false, {"--config", cfg});
  CHECK_TRUE(d.port() != 0);
  auto prompt = [](int i) {
    std::string p;
    for (int w = 0; w < 60; ++w) p += "word" + std::to_string(i) + "x" + std::to_string(w) + " ";
    return R"({"model":"tiny","prompt":")" + p + R"(","max_tokens":2,"temperature":0})";
  };
  for (int i = 0; i < 10; ++i) LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", prompt(i), d.key()).status);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK_TRUE(disk.fill("junk"));
  // Every request is answered while the tier's writes fail.
  for (int i = 10; i < 60; ++i) {
    const HttpReply r = http(d.port(), "POST", "/v1/completions", prompt(i), d.key());
    LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const HttpReply m = http(d.metrics_port(), "GET", "/metrics");
  LONGS_EQUAL(200, m.status);
  const size_t at = m.body.find("supernode_kv_tier3_writes_failed_total{");
  CHECK_TEXT(at != std::string::npos, m.body.c_str());
  const std::string line = m.body.substr(at, m.body.find('\n', at) - at);
  CHECK_TEXT(line.substr(line.rfind(' ') + 1) != "0", line.c_str());
  std::filesystem::remove(disk.path + "/junk");
  for (int i = 60; i < 70; ++i) LONGS_EQUAL(200, http(d.port(), "POST", "/v1/completions", prompt(i), d.key()).status);
  check_serving(d, d.key());
}
