// supernoded end to end: the real daemon started on 127.0.0.1 (a free port) over a state
// directory of its own, spoken to over raw HTTP/1.1: health without a key, 401 without or
// with a bad key, the model list, completions (JSON and server-sent events, usage, stop
// strings), OpenAI error objects for malformed JSON, wrong types, unknown models and huge
// bodies, a client that hangs up mid-stream (the daemon serves on), and greedy output equal
// to `supernode run`. Unit groups use a generated model; ModelDaemon uses stories260K.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "json_lite.h"
#include "supernode/storage/state_store.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

#include "daemon_harness.h"

namespace {

using namespace sn::testing::daemon;

std::string ascii_lower_copy(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_GROUP(Daemon) {
  std::unique_ptr<sn::testing::TempDir> dir;
  std::unique_ptr<Daemon> d;
  std::string model;
  void setup() override {
    dir = std::make_unique<sn::testing::TempDir>();
    model = make_chat_model(*dir);  // ChatML-style template: chat works
    d = std::make_unique<Daemon>(model, dir->file("state"));
  }
  void teardown() override {
    d.reset();
    dir.reset();
  }
};

TEST(Daemon, StartsWithAKeyFileAndAnswersHealthWithoutOne) {
  CHECK_TRUE(d->port() != 0);
  CHECK_TRUE(d->key().rfind("sk-sn-", 0) == 0);
  HttpReply h = http(d->port(), "GET", "/healthz");
  LONGS_EQUAL(200, h.status);
  // The key is never logged.
  const std::string err = sn::testing::read_file(dir->file("state") + ".err");
  CHECK_FALSE(has(err, d->key().substr(23)));
  CHECK_TRUE(has(err, "initial-api-key"));
}

TEST(Daemon, EveryApiRouteNeedsAValidKey) {
  HttpReply none = http(d->port(), "GET", "/v1/models");
  LONGS_EQUAL(401, none.status);
  CHECK_TRUE(has(none.body, "\"invalid_api_key\""));
  HttpReply bad = http(d->port(), "GET", "/v1/models", "", "sk-sn-0123456789abcdef-" + std::string(43, 'A'));
  LONGS_EQUAL(401, bad.status);
  HttpReply ok = http(d->port(), "GET", "/v1/models", "", d->key());
  LONGS_EQUAL(200, ok.status);
  CHECK_TRUE(has(ok.body, "\"id\":\"tiny\""));
  CHECK_TRUE(has(ok.body, "\"object\":\"list\""));
}

TEST(Daemon, CompletionsAsJsonAndAsEvents) {
  const std::string body = R"({"model":"tiny","prompt":"once upon a time","max_tokens":8,"temperature":0})";
  HttpReply r = http(d->port(), "POST", "/v1/completions", body, d->key());
  LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  CHECK_TRUE(has(r.body, "\"object\":\"text_completion\""));
  CHECK_TRUE(has(r.body, "\"finish_reason\":\"length\""));
  CHECK_TRUE(has(r.body, "\"completion_tokens\":8"));
  const std::string sbody =
      R"({"model":"tiny","prompt":"once upon a time","max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}})";
  HttpReply s = http(d->port(), "POST", "/v1/completions", sbody, d->key());
  LONGS_EQUAL(200, s.status);
  CHECK_TRUE(has(s.headers, "text/event-stream"));
  CHECK_TRUE(has(s.body, "data: [DONE]\n\n"));
  CHECK_TRUE(has(s.body, "\"finish_reason\":\"length\""));
  CHECK_TRUE(has(s.body, "\"choices\":[]"));  // the usage chunk
  // The streamed text equals the JSON text.
  std::string streamed;
  for (size_t p = 0; (p = s.body.find("\"text\":\"", p)) != std::string::npos;) {
    p += 8;
    const size_t e = s.body.find('"', p);
    streamed += s.body.substr(p, e - p);
  }
  const size_t t = r.body.find("\"text\":\"") + 8;
  CHECK_EQUAL(r.body.substr(t, r.body.find('"', t) - t), streamed);
  // A repeated prompt reports its cached prefix... once it spans a full block of 16 tokens.
  const std::string long_prompt(200, 'a');
  const std::string lbody = R"({"model":"tiny","prompt":")" + long_prompt + R"(","max_tokens":2,"temperature":0})";
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", lbody, d->key()).status);
  HttpReply again = http(d->port(), "POST", "/v1/completions", lbody, d->key());
  CHECK_FALSE_TEXT(has(again.body, "\"cached_tokens\":0"), again.body.c_str());
}

TEST(Daemon, ChatCompletionsThroughTheModelsTemplate) {
  const std::string body =
      R"({"model":"tiny","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}],)"
      R"("max_completion_tokens":6,"temperature":0})";
  HttpReply r = http(d->port(), "POST", "/v1/chat/completions", body, d->key());
  LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  CHECK_TRUE(has(r.body, "\"object\":\"chat.completion\""));
  CHECK_TRUE(has(r.body, "\"role\":\"assistant\""));
  CHECK_TRUE(has(r.body, "\"completion_tokens\":6"));
  CHECK_TRUE(has(r.body, "\"id\":\"chatcmpl-"));
  const std::string sbody =
      R"({"model":"tiny","messages":[{"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}]}],)"
      R"("max_tokens":4,"stream":true})";
  HttpReply s = http(d->port(), "POST", "/v1/chat/completions", sbody, d->key());
  LONGS_EQUAL(200, s.status);
  CHECK_TRUE(has(s.body, "\"object\":\"chat.completion.chunk\""));
  CHECK_TRUE(has(s.body, "\"delta\":{\"content\""));
  CHECK_TRUE(has(s.body, "data: [DONE]"));
  HttpReply bad = http(d->port(), "POST", "/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"wizard","content":"x"}]})",
                       d->key());
  LONGS_EQUAL(400, bad.status);
  CHECK_TRUE(has(bad.body, "messages[0].role"));
  HttpReply empty = http(d->port(), "POST", "/v1/chat/completions", R"({"model":"tiny","messages":[]})", d->key());
  LONGS_EQUAL(400, empty.status);
}

// The admin CLI over the daemon's Unix socket: a tenant and a key made there work on the
// API; a revoked key gets 401; the audit chain verifies.
TEST(Daemon, AdminCliManagesTenantsAndKeys) {
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  CHECK_TRUE(has(run_out(cli + "tenants create acme --rpm 100 2>&1"), "created tenant acme"));
  std::string key = run_out(cli + "keys create --tenant acme");
  while (!key.empty() && key.back() == '\n') key.pop_back();
  CHECK_TEXT(key.rfind("sk-sn-", 0) == 0, key.c_str());
  LONGS_EQUAL(200, http(d->port(), "GET", "/v1/models", "", key).status);
  const std::string key_id = key.substr(6, 16);
  CHECK_TRUE(has(run_out(cli + "keys list --tenant acme"), key_id));
  CHECK_TRUE(has(run_out(cli + "keys revoke " + key_id), "revoked"));
  LONGS_EQUAL(401, http(d->port(), "GET", "/v1/models", "", key).status);
  CHECK_TRUE(has(run_out(cli + "audit verify; echo rc=$?"), "rc=0"));
  CHECK_TRUE(has(run_out(cli + "keys create --tenant nobody 2>&1; echo rc=$?"), "rc=1"));
}

TEST(Daemon, BadRequestsGetOpenAiErrors) {
  HttpReply j = http(d->port(), "POST", "/v1/completions", "{not json", d->key());
  LONGS_EQUAL(400, j.status);
  CHECK_TRUE(has(j.body, "\"error\":{"));
  HttpReply ty = http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","max_tokens":"ten"})", d->key());
  LONGS_EQUAL(400, ty.status);
  CHECK_TRUE(has(ty.body, "\"param\":\"max_tokens\""));
  HttpReply range = http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","temperature":7})", d->key());
  LONGS_EQUAL(400, range.status);
  HttpReply m = http(d->port(), "POST", "/v1/completions", R"({"model":"nope","prompt":"x"})", d->key());
  LONGS_EQUAL(404, m.status);
  CHECK_TRUE(has(m.body, "model_not_found"));
  HttpReply big = http(d->port(), "POST", "/v1/completions", std::string(5u << 20, ' '), d->key());
  LONGS_EQUAL(413, big.status);
  HttpReply route = http(d->port(), "GET", "/v1/nothing", "", d->key());
  LONGS_EQUAL(404, route.status);
  HttpReply meth = http(d->port(), "GET", "/v1/completions", "", d->key());
  LONGS_EQUAL(405, meth.status);
  HttpReply ctx = http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","max_tokens":100000})", d->key());
  LONGS_EQUAL(400, ctx.status);
  // Still serving.
  LONGS_EQUAL(200, http(d->port(), "GET", "/healthz").status);
}

TEST(Daemon, MetricsAreValidPrometheusText) {
  const std::string body = R"({"model":"tiny","prompt":"hello","max_tokens":3})";
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", body, d->key()).status);
  LONGS_EQUAL(404, http(d->port(), "GET", "/v1/no/such/route", "", d->key()).status);
  // Metrics are for monitoring, on their own listener: a tenant's key never sees them.
  CHECK_TRUE(d->metrics_port() != 0 && d->metrics_port() != d->port());
  HttpReply m = http(d->metrics_port(), "GET", "/metrics");
  LONGS_EQUAL(200, m.status);
  LONGS_EQUAL(404, http(d->port(), "GET", "/metrics", "", d->key()).status);
  LONGS_EQUAL(404, http(d->metrics_port(), "GET", "/v1/models", "", d->key()).status);
  CHECK_TRUE(has(m.headers, "text/plain; version=0.0.4"));
  CHECK_TRUE(has(m.body, "supernode_requests_total{model=\"tiny\",tenant=\"default\",code=\"200\"} 1"));
  CHECK_TRUE(has(m.body, "supernode_completion_tokens_total{model=\"tiny\",tenant=\"default\"} 3"));
  CHECK_TRUE(has(m.body, "supernode_requests_refused_total{route=\"other\",code=\"404\"} 1"));
  CHECK_TRUE(has(m.body, "supernode_time_to_first_token_seconds_count{model=\"tiny\"} 1"));
  CHECK_TRUE(has(m.body, "supernode_kv_tier1_blocks{model=\"tiny\"}"));
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    sn::testing::skip("promtool not installed (Debian package prometheus); exposition not checked by it");
    return;
  }
  const std::string file = dir->file("metrics.txt");
  sn::testing::write_file(file, m.body);
  const std::string out = run_out("promtool check metrics < " + file + " 2>&1; echo rc=$?");
  CHECK_TEXT(has(out, "rc=0"), out.c_str());
}

TEST(Daemon, AClientThatHangsUpMidStreamDoesNotStopTheDaemon) {
  for (int i = 0; i < 3; ++i) {
    const int fd = send_completion(d->port(), d->key(), R"({"model":"tiny","prompt":"hello","max_tokens":400,"stream":true})");
    CHECK_TRUE(fd >= 0);
    char buf[256];
    (void)::recv(fd, buf, sizeof buf, 0);  // the first bytes of the stream
    ::close(fd);
  }
  const std::string body = R"({"model":"tiny","prompt":"hello","max_tokens":4,"temperature":0})";
  HttpReply r = http(d->port(), "POST", "/v1/completions", body, d->key());
  LONGS_EQUAL(200, r.status);
}

// Keys and tenants made in the state store before the daemon starts (the admin CLI is not
// there yet): an rpm of 2 gives 429 with Retry-After and x-ratelimit headers; usage is
// metered per key.
TEST(Daemon, QuotasGive429WithRetryAfterAndUsageIsMetered) {
  d.reset();
  sn::testing::TempDir state_dir;
  std::string key;
  {
    sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(state_dir.file("state.db"));
    CHECK_TRUE(st.ok());
    CHECK_TRUE((*st)->create_tenant("acme", {}, "test").ok());
    sn::Result<sn::storage::NewApiKey> k = (*st)->create_key("acme", {.rpm = 2}, "limited", "test");
    CHECK_TRUE(k.ok());
    key = k->key;
  }
  Daemon limited(model, state_dir.path());
  const std::string body = R"({"model":"tiny","prompt":"hello","max_tokens":3,"temperature":0})";
  HttpReply a = http(limited.port(), "POST", "/v1/completions", body, key);
  LONGS_EQUAL(200, a.status);
  CHECK_TRUE(has(a.headers, "x-ratelimit-limit-requests: 2"));
  CHECK_TRUE(has(a.headers, "x-ratelimit-remaining-requests: 1"));
  LONGS_EQUAL(200, http(limited.port(), "POST", "/v1/completions", body, key).status);
  HttpReply no = http(limited.port(), "POST", "/v1/completions", body, key);
  LONGS_EQUAL(429, no.status);
  CHECK_TRUE(has(no.headers, "Retry-After: "));
  CHECK_TRUE(has(no.body, "rate_limit_exceeded"));
  // Usage reaches the store within the flush interval (1 s): two requests of 3 tokens.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  sn::Result<std::unique_ptr<sn::storage::StateStore>> st = sn::storage::StateStore::open(state_dir.file("state.db"));
  CHECK_TRUE(st.ok());
  sn::Result<std::vector<sn::storage::UsageRow>> rows = (*st)->usage(0, "acme");
  CHECK_TRUE(rows.ok());
  int64_t requests = 0, completion = 0;
  for (const sn::storage::UsageRow& u : *rows) {
    requests += u.requests;
    completion += u.completion_tokens;
  }
  LONGS_EQUAL(2, requests);
  LONGS_EQUAL(6, completion);
}

// HTTPS by default: a self-signed certificate made at first start (key 0600) serves TLS
// 1.2+; plain HTTP and TLS 1.1 are refused on it; --plain-http is refused off loopback.
TEST(Daemon, HttpsByDefaultWithASelfSignedCertificate) {
  d.reset();
  if (std::system("command -v curl >/dev/null 2>&1") != 0) {
    sn::testing::skip("curl not installed; HTTPS not checked");
    return;
  }
  sn::testing::TempDir state_dir;
  Daemon tls(model, state_dir.path(), /*tls=*/true);
  CHECK_TRUE(tls.port() != 0);
  const std::string cert = state_dir.file("tls/cert.pem");
  struct stat st {};
  CHECK_EQUAL(0, ::stat(state_dir.file("tls/key.pem").c_str(), &st));
  LONGS_EQUAL(0600, st.st_mode & 0777);
  const std::string url = "https://localhost:" + std::to_string(tls.port());
  const std::string ok = run_out("curl -s --cacert " + cert + " " + url + "/v1/completions -H 'Authorization: Bearer " +
                                 tls.key() + "' -d '{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":2}'");
  CHECK_TEXT(has(ok, "\"text_completion\""), ok.c_str());
  const std::string old = run_out("curl -s -k --tls-max 1.1 " + url + "/healthz; echo rc=$?");
  CHECK_TEXT(!has(old, "rc=0"), old.c_str());
  HttpReply plain = http(tls.port(), "GET", "/healthz");
  CHECK_TRUE(plain.status != 200);
  // Regression: no cipher policy. Forward-secret AEAD suites only: CBC, SHA-1 MACs and RSA
  // key exchange are refused; the key file is 0600 from its first byte (the initial API
  // key's too).
  const std::string tls12 = "openssl s_client -connect 127.0.0.1:" + std::to_string(tls.port()) + " -tls1_2 -cipher ";
  const std::string aead = run_out(tls12 + "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256 </dev/null 2>&1");
  CHECK_TEXT(has(aead, "Cipher is ECDHE-"), aead.c_str());
  for (const char* weak : {"AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
                           "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384"}) {
    const std::string out = run_out(tls12 + weak + " </dev/null 2>&1; echo rc=$?");
    CHECK_TEXT(!has(out, std::string("Cipher is ") + weak), out.c_str());
  }
  CHECK_EQUAL(0, ::stat(state_dir.file("initial-api-key").c_str(), &st));
  LONGS_EQUAL(0600, st.st_mode & 0777);
  const std::string refused = run_out(sn::testing::bin_dir() + "/supernoded --listen 0.0.0.0:0 --plain-http -m " + model +
                                      " --state-dir " + state_dir.file("other") + " 2>&1; echo rc=$?");
  CHECK_TEXT(has(refused, "refused on the non-loopback address") && has(refused, "rc=2"), refused.c_str());
}

TEST_GROUP(ModelDaemon){};

TEST(ModelDaemon, GreedyOverTheApiEqualsSupernodeRun) {
  std::optional<std::string> m = sn::testing::shared_file("models/stories260K.gguf");
  if (!m) return;
  sn::testing::TempDir dir;
  Daemon d(*m, dir.file("state"));
  const std::string want = run_out(sn::testing::bin_dir() + "/supernode run -m " + *m +
                                   " -p 'Once upon a time' -n 48 --temp 0 2>/dev/null");
  HttpReply r = http(d.port(), "POST", "/v1/completions",
                     R"({"model":"stories260K","prompt":"Once upon a time","max_tokens":48,"temperature":0})", d.key());
  LONGS_EQUAL(200, r.status);
  const size_t t = r.body.find("\"text\":\"") + 8;
  const std::string got = r.body.substr(t, r.body.find('"', t) - t);
  CHECK_EQUAL(want.substr(0, want.find_last_not_of("\n") + 1), got);
  // A stop string ends the text before it, with finish_reason stop.
  HttpReply s = http(d.port(), "POST", "/v1/completions",
                     R"({"model":"stories260K","prompt":"Once upon a time","max_tokens":48,"temperature":0,"stop":["Lily"]})",
                     d.key());
  LONGS_EQUAL(200, s.status);
  CHECK_TRUE(has(s.body, "\"finish_reason\":\"stop\""));
  CHECK_TRUE(has(s.body, "\"text\":\", there was a little girl named \""));
  // stories260K has no chat template: chat requests get a clear 400.
  HttpReply c = http(d.port(), "POST", "/v1/chat/completions",
                     R"({"model":"stories260K","messages":[{"role":"user","content":"hi"}]})", d.key());
  LONGS_EQUAL(400, c.status);
  CHECK_TEXT(has(c.body, "has no usable chat template"), c.body.c_str());
}

// The model catalog over the admin CLI while the API serves: import (sha256, copied into
// STATE_DIR/models), load, a request in flight when its model is unloaded finishes whole,
// then the model is gone (404) while the other one serves on; a loaded catalog model comes
// back after a restart, an unloaded one does not.
TEST(Daemon, ModelsImportLoadAndUnloadWhileServing) {
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  const std::string imported = run_out(cli + "models import " + model + " --id second 2>/dev/null");
  CHECK_TEXT(has(imported, "imported second") && has(imported, "sha256 "), imported.c_str());
  const std::string sha = imported.substr(imported.find("sha256 ") + 7, 64);
  LONGS_EQUAL(64, static_cast<long>(sha.find_first_not_of("0123456789abcdef") == std::string::npos ? sha.size() : 0));
  CHECK_TRUE(has(run_out(cli + "models import " + model + " --id second 2>&1; echo rc=$?"), "rc=1"));  // id taken
  CHECK_TRUE(has(run_out(cli + "models import /etc/hostname --id bad 2>&1; echo rc=$?"), "rc=1"));     // not GGUF
  CHECK_FALSE(has(http(d->port(), "GET", "/v1/models", "", d->key()).body, "\"second\""));
  CHECK_TRUE(has(run_out(cli + "models load second"), "loaded second"));
  CHECK_TRUE(has(http(d->port(), "GET", "/v1/models", "", d->key()).body, "\"second\""));
  CHECK_TRUE(has(run_out(cli + "models list"), "autoload"));

  HttpReply streamed;
  std::thread client([&] {
    streamed = http(d->port(), "POST", "/v1/completions",
                    R"({"model":"second","prompt":"hello","max_tokens":300,"ignore_eos":true,"stream":true})", d->key());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string unloaded = run_out(cli + "models unload second 2>&1");
  client.join();
  CHECK_TEXT(has(unloaded, "unloaded second"), unloaded.c_str());
  LONGS_EQUAL(200, streamed.status);
  CHECK_TEXT(has(streamed.body, "\"finish_reason\":\"length\"") && has(streamed.body, "[DONE]"), streamed.body.c_str());
  LONGS_EQUAL(404, http(d->port(), "POST", "/v1/completions", R"({"model":"second","prompt":"hi","max_tokens":2})",
                        d->key()).status);
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})",
                        d->key()).status);

  // Autoload follows load/unload across restarts.
  d.reset();
  d = std::make_unique<Daemon>(model, dir->file("state"));
  CHECK_FALSE(has(http(d->port(), "GET", "/v1/models", "", d->key()).body, "\"second\""));
  CHECK_TRUE(has(run_out(cli + "models load second"), "loaded second"));
  d.reset();
  d = std::make_unique<Daemon>(model, dir->file("state"));
  CHECK_TRUE(has(http(d->port(), "GET", "/v1/models", "", d->key()).body, "\"second\""));
  CHECK_TRUE(has(run_out(cli + "models remove second 2>&1; echo rc=$?"), "rc=1"));  // still loaded
  CHECK_TRUE(has(run_out(cli + "models unload second && " + cli + "models remove second"), "removed second"));
  CHECK_FALSE(has(run_out(cli + "models list"), "second"));
}

// logprobs in OpenAI's two shapes: one entry per completion token, every logprob <= 0, the
// alternatives sorted, and under greedy sampling the chosen token is the most likely one.
TEST(Daemon, LogprobsForCompletionsAndChat) {
  using sn::testing::Json;
  HttpReply r = http(d->port(), "POST", "/v1/completions",
                     R"({"model":"tiny","prompt":"once upon","max_tokens":6,"temperature":0,"logprobs":3,"ignore_eos":true})",
                     d->key());
  LONGS_EQUAL_TEXT(200, r.status, r.body.c_str());
  const Json c = sn::testing::parse_json(r.body)["choices"][0]["logprobs"];
  LONGS_EQUAL(6, static_cast<long>(c["tokens"].size()));
  LONGS_EQUAL(6, static_cast<long>(c["token_logprobs"].size()));
  LONGS_EQUAL(6, static_cast<long>(c["text_offset"].size()));
  for (size_t i = 0; i < 6; ++i) {
    const double chosen = c["token_logprobs"][i].num;
    CHECK_TRUE(chosen <= 0.0);
    double best = -1e30;
    for (const auto& [tok, v] : c["top_logprobs"][i].obj) best = std::max(best, v.num);
    DOUBLES_EQUAL(best, chosen, 1e-6);  // greedy: the chosen one is the top one
    CHECK_TRUE(c["top_logprobs"][i].size() >= 1 && c["top_logprobs"][i].size() <= 3);
  }
  HttpReply ch = http(d->port(), "POST", "/v1/chat/completions",
                      R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0,)"
                      R"("logprobs":true,"top_logprobs":2,"ignore_eos":true,"user":"alice"})",
                      d->key());
  LONGS_EQUAL_TEXT(200, ch.status, ch.body.c_str());
  const Json content = sn::testing::parse_json(ch.body)["choices"][0]["logprobs"]["content"];
  LONGS_EQUAL(4, static_cast<long>(content.size()));
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& e = content[i];
    LONGS_EQUAL(2, static_cast<long>(e["top_logprobs"].size()));
    CHECK_TRUE(e["top_logprobs"][0]["logprob"].num >= e["top_logprobs"][1]["logprob"].num);
    DOUBLES_EQUAL(e["top_logprobs"][0]["logprob"].num, e["logprob"].num, 1e-6);
    LONGS_EQUAL(static_cast<long>(e["token"].str.size()), static_cast<long>(e["bytes"].size()));
  }
  LONGS_EQUAL(400, http(d->port(), "POST", "/v1/chat/completions",
                        R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"top_logprobs":2})", d->key()).status);
  LONGS_EQUAL(400, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","logprobs":21})", d->key()).status);
  LONGS_EQUAL(400, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","user":5})", d->key()).status);
}

// n > 1: one choice per index, each complete; seeded draws differ between choices and
// repeat across calls; usage counts the prompt once and every choice's tokens.
TEST(Daemon, SeveralChoicesPerRequest) {
  using sn::testing::Json;
  const std::string body =
      R"({"model":"tiny","prompt":"once upon","max_tokens":5,"temperature":1.5,"seed":7,"n":3,"ignore_eos":true})";
  HttpReply a = http(d->port(), "POST", "/v1/completions", body, d->key());
  LONGS_EQUAL_TEXT(200, a.status, a.body.c_str());
  const Json ja = sn::testing::parse_json(a.body);
  LONGS_EQUAL(3, static_cast<long>(ja["choices"].size()));
  for (size_t i = 0; i < 3; ++i) DOUBLES_EQUAL(static_cast<double>(i), ja["choices"][i]["index"].num, 0);
  DOUBLES_EQUAL(15, ja["usage"]["completion_tokens"].num, 0);
  CHECK_TRUE(ja["choices"][0]["text"].str != ja["choices"][1]["text"].str ||
             ja["choices"][1]["text"].str != ja["choices"][2]["text"].str);
  const Json jb = sn::testing::parse_json(http(d->port(), "POST", "/v1/completions", body, d->key()).body);
  for (size_t i = 0; i < 3; ++i) CHECK_EQUAL(ja["choices"][i]["text"].str, jb["choices"][i]["text"].str);
  // Streaming: every index ends with its own finish_reason.
  HttpReply s = http(d->port(), "POST", "/v1/completions",
                     R"({"model":"tiny","prompt":"once upon","max_tokens":3,"n":2,"stream":true,"ignore_eos":true})", d->key());
  LONGS_EQUAL(200, s.status);
  int finishes = 0;
  for (size_t p = 0; (p = s.body.find("\"finish_reason\":\"length\"", p)) != std::string::npos; ++p) ++finishes;
  LONGS_EQUAL(2, finishes);
  CHECK_TRUE(has(s.body, "\"index\":1"));
  LONGS_EQUAL(400, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"x","n":17})", d->key()).status);
}

// A client that gives up on a non-streaming request: its request is cancelled at once (the
// engine stops stepping it), not computed to the end.
TEST(Daemon, AClientThatHangsUpBeforeTheAnswerCancelsItsRequest) {
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  // Four choices of 490 tokens: long enough that the hang-up lands mid-way even on a
  // loaded, sanitized build.
  const int fd = send_completion(d->port(), d->key(),
                                 R"({"model":"tiny","prompt":"hello","max_tokens":490,"n":4,"ignore_eos":true})");
  CHECK_TRUE(fd >= 0);
  std::string st;
  for (int i = 0; i < 200 && !has(st, "running 4"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = run_out(cli + "status");
  }
  CHECK_TEXT(has(st, "running 4"), st.c_str());
  ::close(fd);
  for (int i = 0; i < 200 && !has(st, "running 0"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    st = run_out(cli + "status");
  }
  CHECK_TEXT(has(st, "running 0"), st.c_str());
  // Far fewer than the 4 x 490 tokens asked for were generated.
  const size_t t = st.find("tokens ");
  CHECK_TEXT(t != std::string::npos && std::atol(st.c_str() + t + 7) < 4 * 470, st.c_str());
}

// Backup while serving, restore while stopped: a key made after the backup is gone, the
// earlier key works, the audit chain verifies (with the restore recorded); a restore is
// refused while the daemon runs and for a file that is not a good state database.
TEST(Daemon, BackupAndRestore) {
  const std::string state = dir->file("state");
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + state + "/admin.sock ";
  const std::string backup = dir->file("backup.db");
  CHECK_TRUE(has(run_out(cli + "backup " + backup), "backed up"));
  std::string later = run_out(cli + "keys create --tenant default");
  while (!later.empty() && later.back() == '\n') later.pop_back();
  LONGS_EQUAL(200, http(d->port(), "GET", "/v1/models", "", later).status);
  const std::string restore = cli + "restore --state-dir " + state + " ";
  CHECK_TRUE(has(run_out(restore + backup + " 2>&1; echo rc=$?"), "is running"));
  d.reset();
  sn::testing::write_file(dir->file("junk.db"), "not a database");
  CHECK_TRUE(has(run_out(restore + dir->file("junk.db") + " 2>&1; echo rc=$?"), "rc=1"));
  const std::string out = run_out(restore + backup + " 2>&1; echo rc=$?");
  CHECK_TEXT(has(out, "restored") && has(out, "rc=0"), out.c_str());
  d = std::make_unique<Daemon>(model, state);
  LONGS_EQUAL(401, http(d->port(), "GET", "/v1/models", "", later).status);
  LONGS_EQUAL(200, http(d->port(), "GET", "/v1/models", "", d->key()).status);
  CHECK_TRUE(has(run_out(cli + "audit verify; echo rc=$?"), "rc=0"));
}

// kill -9 during a load run, then a restart: every usage row flushed before the kill is
// there, the audit chain verifies, the disk KV tier gives the repeated prefix back (tier 1 and
// host RAM are empty after a restart), and the daemon serves again.
TEST(Daemon, KillNineDuringLoadThenRestart) {
  const std::string state = dir->file("state");
  const std::vector<std::string> tiers = {"--kv-host-mb", "16", "--kv-disk-mb", "64"};
  d.reset();
  d = std::make_unique<Daemon>(model, state, false, tiers);
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + state + "/admin.sock ";
  CHECK_TRUE(has(run_out(cli + "tenants create acme"), "created"));  // an audited admin action
  std::string prefix;
  for (int i = 0; i < 25; ++i) prefix += "the quick brown fox " + std::to_string(i) + " ";
  const std::string long_body = R"({"model":"tiny","prompt":")" + prefix + R"(","max_tokens":2,"temperature":0})";
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", long_body, d->key()).status);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // idle: written through to disk

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      while (!stop.load()) {
        const std::string body = R"({"model":"tiny","prompt":"load )" + std::to_string(t) +
                                 R"(","max_tokens":8,"stream":true,"ignore_eos":true})";
        if (http(d->port(), "POST", "/v1/completions", body, d->key()).status == 200) ++ok;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // What the store holds now (usage is flushed before it answers).
  const std::string before = run_out(cli + "usage --minutes 5");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  d->kill9();
  stop = true;
  for (std::thread& t : load) t.join();
  CHECK_TRUE(ok.load() > 0);

  auto requests_of = [](const std::string& table) {
    long total = 0;
    std::istringstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string minute, key_id, tenant;
      long requests = 0;
      if (f >> minute >> key_id >> tenant >> requests) total += requests;
    }
    return total;
  };
  const long flushed = requests_of(before);
  CHECK_TRUE(flushed > 0);

  d = std::make_unique<Daemon>(model, state, false, tiers);
  CHECK_TRUE_TEXT(d->port() != 0, "the daemon restarts after kill -9");
  const std::string after = run_out(cli + "usage --minutes 5");
  CHECK_TEXT(requests_of(after) >= flushed, (before + "\n--- after ---\n" + after).c_str());
  CHECK_TRUE(has(run_out(cli + "audit verify; echo rc=$?"), "rc=0"));
  CHECK_TRUE(has(run_out(cli + "tenants list"), "acme"));
  HttpReply again = http(d->port(), "POST", "/v1/completions", long_body, d->key());
  LONGS_EQUAL(200, again.status);
  CHECK_FALSE_TEXT(has(again.body, "\"cached_tokens\":0"), again.body.c_str());  // from the disk tier
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})",
                        d->key()).status);
}

namespace {

// Reads sd_notify datagrams until one holds `what` (or `timeout_ms` passes); returns all read.
std::string wait_notify(int fd, const std::string& what, int timeout_ms) {
  std::string all;
  for (int waited = 0; waited < timeout_ms && !has(all, what); waited += 20) {
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      all.append(buf, static_cast<size_t>(n));
      all += '\n';
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return all;
}

}  // namespace

// Under systemd's protocols: the listening socket from socket activation
// (systemd-socket-activate), READY=1 on the notify socket once serving, SIGHUP re-reads the
// config file (a model added loads, a model removed goes; a broken file is refused and the
// daemon serves on), SIGTERM says STOPPING=1 and exits 0.
TEST(Daemon, SystemdActivationNotifyAndReload) {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
    sn::testing::skip("no /usr/bin/systemd-socket-activate (Debian package systemd)");
    return;
  }
  d.reset();
  const std::string notify_path = dir->file("notify.sock");
  const int nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un na{};
  na.sun_family = AF_UNIX;
  std::snprintf(na.sun_path, sizeof na.sun_path, "%s", notify_path.c_str());
  CHECK_EQUAL(0, ::bind(nfd, reinterpret_cast<sockaddr*>(&na), sizeof na));
  // A free port for systemd-socket-activate to bind.
  const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQUAL(0, ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a));
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t port = ntohs(a.sin_port);
  ::close(probe);

  const std::string config = dir->file("supernode.toml");
  const std::string base = "listen = \"127.0.0.1:1\"\nstate_dir = \"" + dir->file("state") + "\"\nadmin_socket = \"" +
                           dir->file("admin.sock") + "\"\nplain_http = true\n[kv]\nhost_mb = 0\n[engine]\ncontext = 256\n"
                           "[metrics]\nlisten = \"127.0.0.1:0\"\n"
                           "[[models]]\nid = \"tiny\"\npath = \"" + model + "\"\n";
  const std::string second = "[[models]]\nid = \"second\"\npath = \"" + model + "\"\n";
  sn::testing::write_file(config, base);
  const pid_t pid = ::fork();
  if (pid == 0) {
    (void)std::freopen(dir->file("sd.out").c_str(), "w", stdout);
    (void)std::freopen(dir->file("sd.err").c_str(), "w", stderr);
    ::setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    const std::string bin = sn::testing::bin_dir() + "/supernoded";
    const std::string listen = "127.0.0.1:" + std::to_string(port);
    // It passes on only the environment named with -E.
    ::execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate", "-E", "NOTIFY_SOCKET", "-l", listen.c_str(), bin.c_str(),
            "--config", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // A failed check leaves the test at once: the process must not outlive it.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (::kill(pid, 0) == 0) {
        ::kill(pid, SIGKILL);
        int st = 0;
        ::waitpid(pid, &st, 0);
      }
    }
  } reaper{pid};
  // systemd-socket-activate listens at once and starts the daemon on the first connection.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string key;
  HttpReply health = http(port, "GET", "/healthz");
  LONGS_EQUAL(200, health.status);
  std::string notes = wait_notify(nfd, "READY=1", 20000);
  CHECK_TEXT(has(notes, "READY=1"), notes.c_str());
  {
    std::ifstream k(dir->file("state") + "/initial-api-key");
    std::getline(k, key);
  }
  const std::string out = run_out("cat " + dir->file("sd.out"));
  CHECK_TEXT(has(out, "listening 127.0.0.1:" + std::to_string(port)), out.c_str());  // the activated socket
  CHECK_TRUE(has(http(port, "GET", "/v1/models", "", key).body, "\"tiny\""));

  sn::testing::write_file(config, base + second + "[log]\nlevel = \"debug\"\n");
  ::kill(pid, SIGHUP);
  notes = wait_notify(nfd, "READY=1", 20000);
  CHECK_TEXT(has(notes, "RELOADING=1") && has(notes, "READY=1"), notes.c_str());
  CHECK_TRUE(has(http(port, "GET", "/v1/models", "", key).body, "\"second\""));

  sn::testing::write_file(config, base + "bad = [\n");
  ::kill(pid, SIGHUP);
  notes = wait_notify(nfd, "READY=1", 20000);
  CHECK_TEXT(has(notes, "reload refused"), notes.c_str());
  CHECK_TRUE(has(http(port, "GET", "/v1/models", "", key).body, "\"second\""));

  sn::testing::write_file(config, base);
  ::kill(pid, SIGHUP);
  notes = wait_notify(nfd, "READY=1", 20000);
  CHECK_FALSE(has(http(port, "GET", "/v1/models", "", key).body, "\"second\""));
  LONGS_EQUAL(200, http(port, "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})", key).status);

  ::kill(pid, SIGTERM);
  notes = wait_notify(nfd, "STOPPING=1", 20000);
  CHECK_TEXT(has(notes, "STOPPING=1"), notes.c_str());
  int st = 0;
  ::waitpid(pid, &st, 0);
  CHECK_TRUE(WIFEXITED(st));
  LONGS_EQUAL(0, WEXITSTATUS(st));
  ::close(nfd);
}

// Content moderation by sensitive terms over the admin CLI: an input term refuses the
// prompt (400, content_filter), whatever its case; an output term ends generation with
// finish_reason content_filter and the term never reaches the client, streaming or not;
// removing the terms restores the plain answer.
TEST(Daemon, SensitiveTermsFilterPromptsAndOutput) {
  using sn::testing::Json;
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  const std::string body = R"({"model":"tiny","prompt":"once upon a time","max_tokens":24,"temperature":0,"ignore_eos":true})";
  HttpReply plain = http(d->port(), "POST", "/v1/completions", body, d->key());
  LONGS_EQUAL(200, plain.status);
  const std::string text = sn::testing::parse_json(plain.body)["choices"][0]["text"].str;
  // An output term: the first three letters of an ASCII word in the greedy answer (random
  // weights write odd bytes too), uppercased (matching ignores case).
  size_t first = std::string::npos;
  for (size_t i = 0; i + 3 <= text.size() && first == std::string::npos; ++i) {
    if (std::islower(static_cast<unsigned char>(text[i])) && std::islower(static_cast<unsigned char>(text[i + 1])) &&
        std::islower(static_cast<unsigned char>(text[i + 2]))) {
      first = i;
    }
  }
  CHECK_TEXT(first != std::string::npos, text.c_str());
  const std::string lower = text.substr(first, 3);
  std::string term = lower;
  for (char& c : term) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK_TRUE_TEXT(has(run_out(cli + "moderation add '" + term + "' --scope output"), "added"), term.c_str());
  CHECK_TRUE(has(run_out(cli + "moderation add Dragon --scope input"), "added"));
  CHECK_TRUE(has(run_out(cli + "moderation list"), "dragon"));

  const Json filtered = sn::testing::parse_json(http(d->port(), "POST", "/v1/completions", body, d->key()).body);
  STRCMP_EQUAL("content_filter", filtered["choices"][0]["finish_reason"].str.c_str());
  CHECK_EQUAL(text.substr(0, first), filtered["choices"][0]["text"].str);
  const std::string sbody = body.substr(0, body.size() - 1) + R"(,"stream":true})";
  HttpReply streamed = http(d->port(), "POST", "/v1/completions", sbody, d->key());
  CHECK_TRUE(has(streamed.body, "\"finish_reason\":\"content_filter\""));
  std::string joined;  // the streamed text: the term never went out
  for (size_t p = 0; (p = streamed.body.find("\"text\":\"", p)) != std::string::npos;) {
    p += 8;
    joined += streamed.body.substr(p, streamed.body.find('"', p) - p);
  }
  CHECK_FALSE(has(ascii_lower_copy(joined), lower));
  CHECK_TRUE(joined.size() > 0 || first == 0);

  HttpReply refused = http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"a DRAGON story","max_tokens":2})",
                           d->key());
  LONGS_EQUAL(400, refused.status);
  CHECK_TRUE(has(refused.body, "\"code\":\"content_filter\""));
  HttpReply chat = http(d->port(), "POST", "/v1/chat/completions",
                        R"({"model":"tiny","messages":[{"role":"user","content":"tell me of dragons"}],"max_tokens":2})", d->key());
  LONGS_EQUAL(400, chat.status);

  CHECK_TRUE(has(run_out(cli + "moderation remove '" + term + "'"), "removed"));
  CHECK_TRUE(has(run_out(cli + "moderation remove dragon"), "removed"));
  CHECK_EQUAL(text, sn::testing::parse_json(http(d->port(), "POST", "/v1/completions", body, d->key()).body)["choices"][0]["text"].str);
  LONGS_EQUAL(200, http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"a dragon","max_tokens":2})",
                        d->key()).status);
}

// SIGTERM drains: a request in flight finishes whole, a new completion meanwhile gets 503
// with Retry-After (and /readyz 503), then the daemon exits 0.
TEST(Daemon, SigtermLetsRequestsInFlightFinish) {
  HttpReply streamed;
  std::thread client([&] {
    streamed = http(d->port(), "POST", "/v1/completions",
                    R"({"model":"tiny","prompt":"hello","max_tokens":400,"ignore_eos":true,"stream":true})", d->key());
  });
  const std::string cli = sn::testing::bin_dir() + "/supernode --admin-socket " + dir->file("state") + "/admin.sock ";
  std::string st;
  for (int i = 0; i < 200 && !has(st, "running 1"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = run_out(cli + "status");
  }
  ::kill(d->pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  HttpReply late = http(d->port(), "POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":2})", d->key());
  HttpReply ready = http(d->port(), "GET", "/readyz");
  client.join();
  LONGS_EQUAL(200, streamed.status);
  CHECK_TEXT(has(streamed.body, "\"finish_reason\":\"length\"") && has(streamed.body, "[DONE]"), streamed.body.c_str());
  if (late.status != 0) {  // 0: the daemon was already gone (the request finished first)
    LONGS_EQUAL(503, late.status);
    CHECK_TRUE(has(late.headers, "Retry-After"));
    LONGS_EQUAL(503, ready.status);
  }
  LONGS_EQUAL(0, d->wait_exit());
}
