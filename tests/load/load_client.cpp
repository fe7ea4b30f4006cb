// supernode-load: the load generator of the loopback load test (tests/load/run.sh, ctest's
// daemon.load). It keeps --connections workers busy against a running supernoded until
// --seconds have passed, each worker sending one request after another, on its kept-alive
// connection or a fresh one, in a seeded random mix of scenarios:
//   35% streaming /v1/completions (usage chunk asked for), read to `data: [DONE]`
//   30% non-streaming /v1/completions, 5% non-streaming /v1/chat/completions
//   10% slow reader: streaming on the leaver key through a small receive buffer, a few bytes
//       every 50 ms until the end
//   10% mid-stream disconnect: streaming on the leaver key, max_tokens 200, closed after the
//       first data chunk
//    5% a 5 MiB body (over the daemon's 4 MiB limit): 413 expected
//    5% malformed JSON: 400 expected
// The keys (--keys K1,...,Kn): K1..Kn-1 are "steady" keys, picked at random for the
// scenarios that read whole answers; Kn, the "leaver", is used only by the slow reader and
// the disconnects. What the client counts is what run.sh compares with the daemon's usage
// table: per steady key, the requests that got a complete 200 answer and the prompt and
// completion tokens of their usage objects (every accepted request must be metered
// exactly); for the leaver, the requests whose 200 headers arrived and a lower bound of
// the tokens it was sent.
//
// Each request ends in one outcome: ok, http_error (by status), intentional_disconnect, or
// a failure: lost (closed or reset before a complete response), timeout (past its 60 s
// deadline) or bad_response (not HTTP, not the JSON or SSE the API promises). A human table
// goes to stderr, with --json one JSON object to stdout; the exit code is 1 when any
// request failed. It never hangs: at --seconds + 90 s whatever is still outstanding is
// reported as timed out and the process exits.
//
// One thread: an io_context running one coroutine per worker; all counters live on it.
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unistd.h>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

// Boost.Asio's awaitable frames come from its own operator new/delete pair; GCC 12 reports
// a false -Wmismatched-new-delete inside Asio's code (as daemon/src/server.cpp notes).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include "supernode/base/args.h"
#include "supernode/base/status.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
using Steady = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

constexpr auto kRequestTimeout = std::chrono::seconds(60);
constexpr auto kGrace = std::chrono::seconds(90);           // after --seconds, before giving up
constexpr size_t kOversizeBytes = 5u << 20;                 // over the daemon's 4 MiB default
constexpr int kDisconnectMaxTokens = 200;
constexpr size_t kSlowReadBytes = 64;                       // per read of the slow reader
constexpr auto kSlowReadPause = std::chrono::milliseconds(50);
constexpr int kSlowReceiveBuffer = 4096;                    // SO_RCVBUF: the daemon's writes block
constexpr double kFreshConnectionShare = 0.25;              // kept-alive connections dropped anyway
constexpr size_t kFailureSamples = 12;

enum class Scenario { kStream, kCompletion, kChat, kSlowReader, kDisconnect, kOversize, kMalformed };
constexpr size_t kScenarios = 7;
constexpr std::array<const char*, kScenarios> kScenarioNames = {"stream",      "completion", "chat",     "slow_reader",
                                                                "disconnect",  "oversize",   "malformed"};
// The mix, in percent, in Scenario order.
constexpr std::array<int, kScenarios> kScenarioPercent = {35, 30, 5, 10, 10, 5, 5};

enum class Outcome { kOk, kHttpError, kIntentionalDisconnect, kLost, kTimeout, kBadResponse };
constexpr size_t kOutcomes = 6;
constexpr std::array<const char*, kOutcomes> kOutcomeNames = {"ok",   "http_error", "intentional_disconnect",
                                                              "lost", "timeout",    "bad_response"};

bool is_failure(Outcome o) { return o == Outcome::kLost || o == Outcome::kTimeout || o == Outcome::kBadResponse; }

struct Options {
  std::string host = "127.0.0.1", port;
  std::vector<std::string> keys;  // steady keys, then the leaver last
  std::string model;
  long long connections = 1000, seconds = 20, seed = 1;
  bool json = false;
};

// Nearest-rank percentile of `v` (q in [0, 1]); 0 when empty.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double seconds_of(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// What one request came to.
struct Record {
  Outcome outcome = Outcome::kLost;
  int status = 0;                  // the HTTP status when one arrived
  bool headers_200 = false;        // 200 headers arrived (the daemon accepted the request)
  bool usage = false;              // the answer carried a usage object
  int64_t prompt_tokens = 0, completion_tokens = 0;  // from the usage object
  int64_t text_chunks = 0;         // SSE chunks with text seen (a lower bound of tokens sent)
  double first_byte_s = -1, total_s = -1;
  std::string detail;              // why it failed
};

// Counts of one scenario or one key.
struct Tally {
  int64_t sent = 0;
  std::array<int64_t, kOutcomes> outcomes{};
  std::map<int, int64_t> http_errors;  // status -> count
  void add(const Record& r) {
    ++sent;
    ++outcomes[static_cast<size_t>(r.outcome)];
    if (r.outcome == Outcome::kHttpError) ++http_errors[r.status];
  }
  [[nodiscard]] ordered_json to_json() const {
    ordered_json j = {{"sent", sent}};
    for (size_t i = 0; i < kOutcomes; ++i) j[kOutcomeNames[i]] = outcomes[i];
    ordered_json errors = ordered_json::object();
    for (const auto& [status, n] : http_errors) errors[std::to_string(status)] = n;
    j["http_errors"] = errors;
    return j;
  }
};

// The daemon-side view the usage table must match.
struct KeyUsage {
  int64_t ok = 0, prompt_tokens = 0, completion_tokens = 0;  // complete 200 answers (steady keys)
  int64_t headers_200 = 0;         // leaver: requests the daemon accepted
  int64_t completion_seen = 0;     // leaver: usage's count when it came, else text chunks seen
  int64_t unfinished = 0;          // leaver: accepted but left before the usage chunk
};

struct Connection {
  explicit Connection(net::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  bool open = false;
  bool small_receive_buffer = false;

  void close() {
    ErrorCode ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    buffer.clear();
    open = false;
    small_receive_buffer = false;
  }
};

// The server-sent events of one streaming answer, parsed as they arrive.
struct EventStream {
  std::string bytes;     // the chunked body so far
  size_t consumed = 0;   // bytes of whole events already parsed
  int64_t events = 0;    // data events parsed
  int64_t text_chunks = 0;
  bool done = false;     // data: [DONE]
  bool usage = false;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::string error;     // an error event, or why an event was not understood
  bool server_error = false;

  // Parses the whole events received so far; false when one is not the API's JSON.
  bool parse() {
    for (size_t end; (end = bytes.find("\n\n", consumed)) != std::string::npos; consumed = end + 2) {
      std::string data;
      for (size_t line = consumed; line < end;) {
        size_t eol = bytes.find('\n', line);
        if (eol == std::string::npos || eol > end) eol = end;
        if (bytes.compare(line, 5, "data:") == 0) {
          size_t from = line + 5;
          if (from < eol && bytes[from] == ' ') ++from;
          data.append(bytes, from, eol - from);
        }
        line = eol + 1;
      }
      if (data.empty()) continue;
      ++events;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const json ev = json::parse(data, nullptr, /*allow_exceptions=*/false);
      if (ev.is_discarded() || !ev.is_object()) {
        error = "an event that is not JSON: " + data.substr(0, 120);
        return false;
      }
      if (auto e = ev.find("error"); e != ev.end()) {
        error = "an error event: " + e->dump().substr(0, 200);
        server_error = true;
        return false;
      }
      if (auto ch = ev.find("choices"); ch != ev.end() && ch->is_array() && !ch->empty()) {
        const json& c = (*ch)[0];
        const json* text = nullptr;
        if (auto t = c.find("text"); t != c.end()) text = &*t;
        if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
          if (auto t = d->find("content"); t != d->end()) text = &*t;
        }
        if (text != nullptr && text->is_string() && !text->get_ref<const std::string&>().empty()) ++text_chunks;
      }
      if (auto u = ev.find("usage"); u != ev.end() && u->is_object()) {
        usage = true;
        prompt_tokens = u->value("prompt_tokens", int64_t{0});
        completion_tokens = u->value("completion_tokens", int64_t{0});
      }
    }
    return true;
  }
};

const char* const kWords[] = {"the",   "quick", "brown", "fox",    "jumps", "over",  "lazy",   "dog",   "a",
                              "model", "reads", "every", "token",  "and",   "then",  "writes", "some",  "more",
                              "river", "stone", "light", "winter", "sings", "under", "green",  "hills", "of"};

std::string random_prompt(std::mt19937_64& rng) {
  const size_t n = 3 + rng() % 10;
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) s += ' ';
    s += kWords[rng() % std::size(kWords)];
  }
  return s;
}

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)) {}

  int run() {
    ErrorCode ec;
    tcp::resolver resolver(ioc_);
    const tcp::resolver::results_type eps = resolver.resolve(o_.host, o_.port, ec);
    if (ec || eps.empty()) {
      std::fprintf(stderr, "supernode-load: cannot resolve %s:%s: %s\n", o_.host.c_str(), o_.port.c_str(),
                   ec.message().c_str());
      return 2;
    }
    endpoint_ = eps.begin()->endpoint();
    oversize_body_ = "{\"model\":" + json(o_.model).dump() + ",\"prompt\":\"";
    oversize_body_.append(kOversizeBytes - oversize_body_.size() - 2, 'x');
    oversize_body_ += "\"}";
    scenarios_.resize(kScenarios);
    keys_.resize(o_.keys.size());
    usage_.resize(o_.keys.size());

    std::fprintf(stderr, "supernode-load: %lld connections for %lld s against %s:%s, model %s, %zu steady keys + 1 leaver\n",
                 o_.connections, o_.seconds, o_.host.c_str(), o_.port.c_str(), o_.model.c_str(), o_.keys.size() - 1);
    t_start_ = Steady::now();
    run_end_ = t_start_ + std::chrono::seconds(o_.seconds);
    workers_left_ = o_.connections;
    for (long long w = 0; w < o_.connections; ++w) net::co_spawn(ioc_, worker(static_cast<uint64_t>(w)), net::detached);
    net::co_spawn(ioc_, watchdog(), net::detached);
    ioc_.run();
    return report();
  }

 private:
  // Stops everything at the global deadline; otherwise prints progress every 5 s.
  net::awaitable<void> watchdog() {
    const Steady::time_point give_up = run_end_ + kGrace;
    watchdog_timer_.emplace(ioc_);
    while (workers_left_ > 0) {
      const Steady::time_point now = Steady::now();
      if (now >= give_up) {
        outstanding_ = in_flight_;
        std::fprintf(stderr, "supernode-load: the global deadline passed with %lld requests outstanding\n",
                     static_cast<long long>(outstanding_));
        ioc_.stop();
        co_return;
      }
      watchdog_timer_->expires_at(std::min(give_up, now + std::chrono::seconds(5)));
      ErrorCode ec;
      co_await watchdog_timer_->async_wait(net::redirect_error(net::use_awaitable, ec));
      if (workers_left_ > 0) progress();
    }
  }

  void progress() const {
    int64_t sent = 0, ok = 0, failed = 0;
    for (const Tally& t : scenarios_) {
      sent += t.sent;
      ok += t.outcomes[static_cast<size_t>(Outcome::kOk)];
      for (size_t i = 0; i < kOutcomes; ++i) failed += is_failure(static_cast<Outcome>(i)) ? t.outcomes[i] : 0;
    }
    std::fprintf(stderr, "supernode-load: %.0f s: %lld finished (%lld ok, %lld failed), %lld in flight, %lld workers\n",
                 seconds_of(Steady::now() - t_start_), static_cast<long long>(sent), static_cast<long long>(ok),
                 static_cast<long long>(failed), static_cast<long long>(in_flight_),
                 static_cast<long long>(workers_left_));
  }

  Scenario pick(std::mt19937_64& rng) const {
    int roll = static_cast<int>(rng() % 100);
    for (size_t i = 0; i < kScenarios; ++i) {
      if (roll < kScenarioPercent[i]) return static_cast<Scenario>(i);
      roll -= kScenarioPercent[i];
    }
    return Scenario::kStream;
  }

  net::awaitable<void> worker(uint64_t w) {
    std::mt19937_64 rng(static_cast<uint64_t>(o_.seed) * 1000003u + w);
    Connection c(ioc_);
    const size_t leaver = o_.keys.size() - 1;
    while (Steady::now() < run_end_) {
      const Scenario s = pick(rng);
      const size_t key = s == Scenario::kSlowReader || s == Scenario::kDisconnect ? leaver : rng() % leaver;
      if (c.open && (c.small_receive_buffer || std::generate_canonical<double, 32>(rng) < kFreshConnectionShare)) c.close();
      ++in_flight_;
      Record r = co_await request(c, s, key, rng);
      --in_flight_;
      account(s, key, r);
    }
    c.close();
    if (--workers_left_ == 0 && watchdog_timer_) watchdog_timer_->cancel();
  }

  void account(Scenario s, size_t key, const Record& r) {
    scenarios_[static_cast<size_t>(s)].add(r);
    keys_[key].add(r);
    KeyUsage& u = usage_[key];
    const bool leaver = key + 1 == o_.keys.size();
    if (r.outcome == Outcome::kOk) {
      ++u.ok;
      u.prompt_tokens += r.prompt_tokens;
      u.completion_tokens += r.completion_tokens;
      if (s == Scenario::kStream || s == Scenario::kCompletion || s == Scenario::kChat) {
        first_byte_.push_back(r.first_byte_s);
        total_.push_back(r.total_s);
      }
    }
    if (leaver && r.headers_200) {
      ++u.headers_200;
      u.completion_seen += r.usage ? r.completion_tokens : r.text_chunks;
      if (!r.usage) ++u.unfinished;
    }
    const bool expected = r.outcome != Outcome::kHttpError ||
                          (s == Scenario::kOversize ? r.status == 413
                           : s == Scenario::kMalformed ? r.status == 400
                                                       : r.status == 429);
    if (!expected) ++unexpected_status_;
    if ((is_failure(r.outcome) || !expected) && failure_samples_.size() < kFailureSamples) {
      failure_samples_.push_back(std::string(kScenarioNames[static_cast<size_t>(s)]) + ": " + kOutcomeNames[static_cast<size_t>(r.outcome)] +
                                 (r.status != 0 ? " (HTTP " + std::to_string(r.status) + ")" : "") +
                                 (r.detail.empty() ? "" : ": " + r.detail));
    }
  }

  static Outcome failure_of(const ErrorCode& ec) {
    return ec == beast::error::timeout ? Outcome::kTimeout : Outcome::kLost;
  }

  static Record failed(Outcome o, const std::string& what, const ErrorCode& ec) {
    Record r;
    r.outcome = o;
    r.detail = what + ": " + ec.message();
    return r;
  }

  // The request's target and body.
  struct Outgoing {
    std::string target = "/v1/completions";
    std::string body;
    bool stream = false;
  };

  Outgoing build(Scenario s, std::mt19937_64& rng) const {
    Outgoing out;
    const long long max_tokens = s == Scenario::kDisconnect ? kDisconnectMaxTokens : 4 + static_cast<long long>(rng() % 21);
    json body = {{"model", o_.model}, {"max_tokens", max_tokens}, {"ignore_eos", true}, {"temperature", 0.7},
                 {"seed", static_cast<long long>(rng() % 1000000)}};
    switch (s) {
      case Scenario::kStream:
      case Scenario::kSlowReader:
      case Scenario::kDisconnect:
        body["prompt"] = random_prompt(rng);
        body["stream"] = true;
        body["stream_options"] = {{"include_usage", true}};
        out.stream = true;
        break;
      case Scenario::kCompletion: body["prompt"] = random_prompt(rng); break;
      case Scenario::kChat:
        out.target = "/v1/chat/completions";
        body["messages"] = json::array({{{"role", "user"}, {"content", random_prompt(rng)}}});
        break;
      case Scenario::kMalformed: {
        const std::string whole = json{{"model", o_.model}, {"prompt", random_prompt(rng)}, {"max_tokens", 8}}.dump();
        switch (rng() % 3) {
          case 0: out.body = whole.substr(0, whole.size() / 2); break;  // cut short
          case 1: out.body = "{\"model\": " + json(o_.model).dump() + ", \"prompt\": 'single quotes'}"; break;
          default: out.body = whole + "}"; break;                      // trailing garbage
        }
        return out;
      }
      case Scenario::kOversize: return out;  // the shared 5 MiB body
    }
    out.body = body.dump();
    return out;
  }

  net::awaitable<ErrorCode> connect(Connection& c, bool small_receive_buffer) {
    ErrorCode ec;
    c.stream.socket().open(endpoint_.protocol(), ec);
    if (!ec && small_receive_buffer) {
      // Before connect, so the window the daemon sees is small from the start.
      c.stream.socket().set_option(net::socket_base::receive_buffer_size(kSlowReceiveBuffer), ec);
    }
    if (ec) co_return ec;
    co_await c.stream.async_connect(endpoint_, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return ec;
    c.stream.socket().set_option(tcp::no_delay(true), ec);
    c.open = true;
    c.small_receive_buffer = small_receive_buffer;
    co_return ErrorCode{};
  }

  // Feeds `p` what is buffered, else reads at most `limit` bytes first; returns once the
  // parser made progress or on an error (end of stream included).
  static net::awaitable<ErrorCode> read_slowly(Connection& c, http::response_parser<http::string_body>& p, size_t limit) {
    ErrorCode ec;
    for (;;) {
      if (c.buffer.size() > 0) {
        const size_t used = p.put(c.buffer.data(), ec);
        c.buffer.consume(used);
        if (ec == http::error::need_more) ec = {};
        if (ec || used > 0 || p.is_done()) co_return ec;
      }
      const size_t n = co_await c.stream.async_read_some(c.buffer.prepare(limit), net::redirect_error(net::use_awaitable, ec));
      c.buffer.commit(n);
      if (ec == net::error::eof) {
        p.put_eof(ec);
        co_return ec ? ec : ErrorCode(net::error::eof);
      }
      if (ec) co_return ec;
    }
  }

  // One request of scenario `s` with key `key`, on `c` (opened when it is not).
  net::awaitable<Record> request(Connection& c, Scenario s, size_t key, std::mt19937_64& rng) {
    const Steady::time_point t0 = Steady::now();
    const Steady::time_point deadline = t0 + kRequestTimeout;
    c.stream.expires_at(deadline);
    ErrorCode ec;
    const bool slow = s == Scenario::kSlowReader;
    if (!c.open) {
      ec = co_await connect(c, slow);
      if (ec) {
        c.close();
        co_return failed(failure_of(ec), "connect", ec);
      }
    }
    const Outgoing out = build(s, rng);
    const std::string host = o_.host + ":" + o_.port;
    const std::string auth = "Bearer " + o_.keys[key];
    if (s == Scenario::kOversize) {
      http::request<http::span_body<const char>> req{http::verb::post, out.target, 11};
      req.set(http::field::host, host);
      req.set(http::field::authorization, auth);
      req.set(http::field::content_type, "application/json");
      req.body() = http::span_body<const char>::value_type(oversize_body_.data(), oversize_body_.size());
      req.prepare_payload();
      co_await http::async_write(c.stream, req, net::redirect_error(net::use_awaitable, ec));
      // The daemon answers 413 from the headers and may close before taking the whole
      // body: the answer may still be readable, so read it whatever the write said.
      if (ec != beast::error::timeout) ec = {};
    } else {
      http::request<http::string_body> req{http::verb::post, out.target, 11};
      req.set(http::field::host, host);
      req.set(http::field::authorization, auth);
      req.set(http::field::content_type, "application/json");
      if (out.stream) req.set(http::field::accept, "text/event-stream");
      req.keep_alive(true);
      req.body() = out.body;
      req.prepare_payload();
      co_await http::async_write(c.stream, req, net::redirect_error(net::use_awaitable, ec));
    }
    if (ec) {
      c.close();
      co_return failed(failure_of(ec), "writing the request", ec);
    }

    EventStream sse;
    auto on_chunk = [&sse](std::uint64_t, beast::string_view data, ErrorCode&) -> std::size_t {
      sse.bytes.append(data.data(), data.size());
      return data.size();
    };
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.on_chunk_body(on_chunk);
    if (slow) {
      parser.eager(true);
      while (!ec && !parser.is_header_done()) ec = co_await read_slowly(c, parser, kSlowReadBytes);
    } else {
      co_await http::async_read_header(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
    }
    if (ec) {
      c.close();
      const bool garbled = ec.category() == http::make_error_code(http::error::bad_target).category() &&
                           ec != http::error::partial_message && ec != http::error::end_of_stream;
      co_return failed(garbled ? Outcome::kBadResponse : failure_of(ec), "reading the response headers", ec);
    }
    Record r;
    r.status = static_cast<int>(parser.get().result_int());
    r.first_byte_s = seconds_of(Steady::now() - t0);

    if (r.status != 200) {
      if (slow) {
        while (!ec && !parser.is_done()) ec = co_await read_slowly(c, parser, kSlowReadBytes);
      } else {
        co_await http::async_read(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
      }
      // The status is the answer even when the body broke off.
      r.outcome = Outcome::kHttpError;
      if (ec || !parser.get().keep_alive()) c.close();
      co_return r;
    }
    r.headers_200 = true;

    if (!out.stream) {
      co_await http::async_read(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        c.close();
        Record f = failed(failure_of(ec), "reading the body", ec);
        f.status = 200;
        f.headers_200 = true;
        co_return f;
      }
      if (!parser.get().keep_alive()) c.close();
      const json body = json::parse(parser.get().body(), nullptr, /*allow_exceptions=*/false);
      const json* u = nullptr;
      if (body.is_object()) {
        if (auto it = body.find("usage"); it != body.end() && it->is_object()) u = &*it;
      }
      const bool has_choice = body.is_object() && body.contains("choices") && body["choices"].is_array() &&
                              !body["choices"].empty();
      if (u == nullptr || !has_choice || !u->contains("prompt_tokens") || !u->contains("completion_tokens")) {
        r.outcome = Outcome::kBadResponse;
        r.detail = "a 200 answer without choices and usage: " + parser.get().body().substr(0, 160);
        co_return r;
      }
      r.outcome = Outcome::kOk;
      r.usage = true;
      r.prompt_tokens = u->value("prompt_tokens", int64_t{0});
      r.completion_tokens = u->value("completion_tokens", int64_t{0});
      r.total_s = seconds_of(Steady::now() - t0);
      co_return r;
    }

    // Streaming: read events until the body ends (or, for a disconnect, the first one).
    bool intact = true;
    while (!parser.is_done()) {
      if (slow) {
        net::steady_timer pause(c.stream.get_executor());
        pause.expires_after(kSlowReadPause);
        co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
        ec = Steady::now() >= deadline ? ErrorCode(beast::error::timeout) : co_await read_slowly(c, parser, kSlowReadBytes);
      } else {
        co_await http::async_read_some(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
      }
      intact = sse.parse();
      if (!intact || ec) break;
      if (s == Scenario::kDisconnect && sse.events > 0 && !parser.is_done()) break;
    }
    r.text_chunks = sse.text_chunks;
    r.usage = sse.usage;
    r.prompt_tokens = sse.prompt_tokens;
    r.completion_tokens = sse.completion_tokens;
    if (!intact) {
      c.close();
      r.outcome = sse.server_error ? Outcome::kHttpError : Outcome::kBadResponse;
      if (sse.server_error) r.status = 500;
      r.detail = sse.error;
      co_return r;
    }
    if (ec) {
      c.close();
      r.outcome = failure_of(ec);
      r.detail = "reading the event stream: " + ec.message();
      co_return r;
    }
    if (!parser.is_done()) {  // the disconnect scenario, on purpose
      c.close();
      r.outcome = Outcome::kIntentionalDisconnect;
      co_return r;
    }
    if (!parser.get().keep_alive()) c.close();
    if (!sse.done || !sse.usage) {
      r.outcome = Outcome::kBadResponse;
      r.detail = sse.done ? "the event stream had no usage chunk" : "the event stream ended without [DONE]";
      co_return r;
    }
    r.outcome = Outcome::kOk;
    r.total_s = seconds_of(Steady::now() - t0);
    co_return r;
  }

  int report() const {
    Tally all;
    for (const Tally& t : scenarios_) {
      all.sent += t.sent;
      for (size_t i = 0; i < kOutcomes; ++i) all.outcomes[i] += t.outcomes[i];
      for (const auto& [status, n] : t.http_errors) all.http_errors[status] += n;
    }
    int64_t failures = outstanding_;
    for (size_t i = 0; i < kOutcomes; ++i) failures += is_failure(static_cast<Outcome>(i)) ? all.outcomes[i] : 0;
    const double wall = seconds_of(Steady::now() - t_start_);
    const size_t leaver = o_.keys.size() - 1;

    std::fprintf(stderr, "\nsupernode-load: %lld requests in %.1f s (%lld connections, %lld s of load)\n",
                 static_cast<long long>(all.sent), wall, o_.connections, o_.seconds);
    std::fprintf(stderr, "%-12s %8s %8s %8s %8s %8s %8s %8s  %s\n", "scenario", "sent", "ok", "http_err", "left", "lost",
                 "timeout", "bad", "statuses");
    auto row = [](const char* name, const Tally& t) {
      std::string statuses;
      for (const auto& [status, n] : t.http_errors) statuses += std::to_string(status) + "x" + std::to_string(n) + " ";
      std::fprintf(stderr, "%-12s %8lld %8lld %8lld %8lld %8lld %8lld %8lld  %s\n", name, static_cast<long long>(t.sent),
                   static_cast<long long>(t.outcomes[0]), static_cast<long long>(t.outcomes[1]),
                   static_cast<long long>(t.outcomes[2]), static_cast<long long>(t.outcomes[3]),
                   static_cast<long long>(t.outcomes[4]), static_cast<long long>(t.outcomes[5]), statuses.c_str());
    };
    for (size_t i = 0; i < kScenarios; ++i) row(kScenarioNames[i], scenarios_[i]);
    row("all", all);
    std::fprintf(stderr, "%-8s %-7s %8s %8s %12s %12s %10s %12s\n", "key", "role", "sent", "ok", "prompt_tok",
                 "complete_tok", "200_heads", "tokens_seen");
    for (size_t k = 0; k < keys_.size(); ++k) {
      const KeyUsage& u = usage_[k];
      std::fprintf(stderr, "K%-7zu %-7s %8lld %8lld %12lld %12lld %10lld %12lld\n", k + 1, k == leaver ? "leaver" : "steady",
                   static_cast<long long>(keys_[k].sent), static_cast<long long>(u.ok),
                   static_cast<long long>(u.prompt_tokens), static_cast<long long>(u.completion_tokens),
                   static_cast<long long>(u.headers_200), static_cast<long long>(u.completion_seen));
    }
    std::fprintf(stderr, "latency of complete answers (%zu): first byte p50 %.3f s p99 %.3f s; total p50 %.3f s p99 %.3f s\n",
                 total_.size(), percentile(first_byte_, 0.5), percentile(first_byte_, 0.99), percentile(total_, 0.5),
                 percentile(total_, 0.99));
    if (unexpected_status_ > 0) {
      std::fprintf(stderr, "unexpected statuses: %lld\n", static_cast<long long>(unexpected_status_));
    }
    if (outstanding_ > 0) std::fprintf(stderr, "outstanding at the global deadline: %lld\n", static_cast<long long>(outstanding_));
    for (const std::string& f : failure_samples_) std::fprintf(stderr, "  %s\n", f.c_str());

    if (o_.json) {
      ordered_json j;
      j["connections"] = o_.connections;
      j["seconds"] = o_.seconds;
      j["seed"] = o_.seed;
      j["wall_s"] = wall;
      j["requests"] = all.sent + outstanding_;  // the outstanding ones count as timeouts
      ordered_json outcomes = all.to_json();
      outcomes.erase("sent");
      outcomes.erase("http_errors");
      outcomes["timeout"] = outcomes["timeout"].get<int64_t>() + outstanding_;
      j["outcomes"] = outcomes;
      j["http_errors"] = all.to_json()["http_errors"];
      j["unexpected_status"] = unexpected_status_;
      j["outstanding_at_deadline"] = outstanding_;
      ordered_json scen = ordered_json::object();
      for (size_t i = 0; i < kScenarios; ++i) scen[kScenarioNames[i]] = scenarios_[i].to_json();
      j["scenarios"] = scen;
      ordered_json keys = ordered_json::array();
      for (size_t k = 0; k < keys_.size(); ++k) {
        const KeyUsage& u = usage_[k];
        ordered_json kj = {{"index", k + 1}, {"role", k == leaver ? "leaver" : "steady"}};
        kj.update(keys_[k].to_json());
        kj["ok_requests"] = u.ok;
        kj["prompt_tokens"] = u.prompt_tokens;
        kj["completion_tokens"] = u.completion_tokens;
        if (k == leaver) {
          kj["headers_200"] = u.headers_200;
          kj["completion_tokens_seen"] = u.completion_seen;
          kj["unfinished"] = u.unfinished;
        }
        keys.push_back(kj);
      }
      j["keys"] = keys;
      j["latency"] = {{"count", total_.size()},
                      {"first_byte_p50_s", percentile(first_byte_, 0.5)},
                      {"first_byte_p99_s", percentile(first_byte_, 0.99)},
                      {"total_p50_s", percentile(total_, 0.5)},
                      {"total_p99_s", percentile(total_, 0.99)}};
      j["failure_samples"] = failure_samples_;
      j["passed"] = failures == 0;
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
    return failures == 0 ? 0 : 1;
  }

  Options o_;
  net::io_context ioc_{1};
  tcp::endpoint endpoint_;
  std::string oversize_body_;
  std::optional<net::steady_timer> watchdog_timer_;
  Steady::time_point t_start_, run_end_;
  int64_t workers_left_ = 0, in_flight_ = 0, outstanding_ = 0, unexpected_status_ = 0;
  std::vector<Tally> scenarios_;  // by Scenario
  std::vector<Tally> keys_;       // by key index
  std::vector<KeyUsage> usage_;   // by key index
  std::vector<double> first_byte_, total_;  // complete answers of the measured scenarios
  std::vector<std::string> failure_samples_;
};

// Lets this process open as many sockets as its hard limit allows.
void raise_open_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) std::perror("supernode-load: setrlimit(RLIMIT_NOFILE)");
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t from = 0;
  for (;;) {
    const size_t comma = s.find(',', from);
    out.push_back(s.substr(from, comma - from));
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

int usage_error(const sn::Status& s) {
  std::fprintf(stderr, "supernode-load: %s\n", s.message().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  sn::Args args("supernode-load",
                "--port P --keys K1,...,Kn --model ID [--host H] [--connections C] [--seconds S] [--seed N] [--json]",
                "Loads a running supernoded (plain HTTP) with C concurrent workers for S seconds, in a random mix\n"
                "of streaming and whole completions, chat, slow readers, mid-stream disconnects, oversized\n"
                "and malformed bodies; counts every outcome, the tokens of the usage objects per key and the\n"
                "latency of complete answers. K1..Kn-1 are steady keys; Kn, the leaver, is used only by the\n"
                "slow readers and the disconnects. Exit 1 when any request was lost, timed out or garbled.",
                {{{"--host"}, "H", "the daemon's address", "127.0.0.1"},
                 {{"--port"}, "P", "the daemon's port (plain HTTP)", ""},
                 {{"--keys"}, "K1,...,Kn", "API keys: steady ones, then the leaver (at least 2)", ""},
                 {{"--model"}, "ID", "model id as the daemon serves it", ""},
                 {{"--connections"}, "C", "concurrent workers, one connection each", "1000"},
                 {{"--seconds"}, "S", "how long new requests start", "20"},
                 {{"--seed"}, "N", "seed of the scenario mix and the prompts", "1"},
                 {{"--json"}, "", "also print one JSON object with every count to stdout", ""}});
  const sn::Status parsed = args.parse(argc, argv, 1);
  if (args.help_requested()) {
    std::string help = args.help_text();
    if (help.rfind("usage: supernode ", 0) == 0) help.replace(0, 17, "usage: ");
    std::fputs(help.c_str(), stdout);
    return 0;
  }
  if (!parsed.is_ok()) return usage_error(parsed);
  if (!args.positional().empty()) {
    return usage_error(sn::Status::invalid_argument("supernode-load", "unexpected argument '" + args.positional().front() + "'"));
  }
  for (const char* required : {"--port", "--keys", "--model"}) {
    if (!args.has(required)) return usage_error(sn::Status::invalid_argument("supernode-load", std::string(required) + " is required"));
  }
  Options o;
  o.host = args.str("--host", "127.0.0.1");
  o.port = *args.value("--port");
  o.model = *args.value("--model");
  o.keys = split_commas(*args.value("--keys"));
  if (o.keys.size() < 2 || std::any_of(o.keys.begin(), o.keys.end(), [](const std::string& k) { return k.empty(); })) {
    return usage_error(sn::Status::invalid_argument("--keys", "needs at least two non-empty keys: steady ones, then the leaver"));
  }
  sn::Result<long long> connections = args.integer("--connections", 1000, 1, 100000);
  sn::Result<long long> secs = args.integer("--seconds", 20, 1, 86400);
  sn::Result<long long> seed = args.integer("--seed", 1, 0, 1LL << 62);
  for (const sn::Status* s : {&connections.status(), &secs.status(), &seed.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  o.connections = *connections;
  o.seconds = *secs;
  o.seed = *seed;
  o.json = args.has("--json");
  std::signal(SIGPIPE, SIG_IGN);
  raise_open_file_limit();
  const int code = Load(std::move(o)).run();
  std::fflush(stdout);
  std::fflush(stderr);
  // At the global deadline requests may still be suspended inside the io_context; leave
  // without unwinding them.
  ::_exit(code);
}
