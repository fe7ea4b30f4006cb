// supernode-http-bench: `supernode serve-bench`'s workload (a), driven through a running
// supernoded over HTTP, so the two can be set side by side and the cost of the daemon's HTTP
// layer read off (issue 5: "HTTP overhead under 5%"). scripts/bench-http.sh runs both.
//
// The workload is serve-bench's, request for request: prompts of P token ids drawn from
// std::mt19937_64(seed) in request order (each id rng() % vocab, then the first replaced by
// BOS), greedy (temperature 0, seed = the request's 1-based number), EOS ignored (vLLM's
// "ignore_eos"), N tokens each. `--streams` connections (HTTP/1.1 keep-alive, one per
// stream) each keep one streaming POST /v1/completions in flight: a stream that finishes
// starts the next request, until `--requests` have finished (a closed loop, as serve-bench
// submits a new request when one finishes). The API does not tell the vocabulary size or
// BOS id, so they come as --vocab and --bos (scripts/bench-http.sh reads them from
// `supernode inspect`).
//
// Per request, from the client's side: TTFT (request written -> first SSE chunk carrying a
// choice; the daemon sends one only once the detokenizer has text), end-to-end latency
// (request written -> the chunk carrying finish_reason), TPOT ((finish chunk - first chunk)
// / (completion tokens - 1)); generation throughput is the usage chunks' completion tokens
// over the wall time of the measured phase (connections are opened, and one unmeasured
// warm-up request run, before it starts). The table and the --json object use serve-bench's
// names for the same quantities; what only the engine knows (threads, ISA, forward time)
// is left out, and steps/preemptions come from the daemon's /metrics when the key may read it.
//
// One thread: an io_context running one coroutine per stream; the client spends well under
// a millisecond of CPU per request (reported as client_cpu_s), so it does not limit the
// server. Progress goes to stderr, results to stdout; exit 1 when any request failed.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
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
using Steady = std::chrono::steady_clock;

struct Options {
  std::string host, port, base_path;  // from --url
  std::string key, model;
  long long streams = 16, requests = 32, max_tokens = 64, prompt_tokens = 128;
  long long vocab = 32000, bos = 1, seed = 1234, warmup = 1;
  long long metrics_port = 0;  // the daemon's metrics listener on the same host; 0: none
  bool json = false;
};

// Nearest-rank percentile of `v` (q in [0, 1]); 0 when empty. As serve-bench computes it.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// serve-bench's prompts, in its order: request i (0-based) gets the i-th P draws.
std::vector<std::vector<int32_t>> make_prompts(const Options& o) {
  std::mt19937_64 rng(static_cast<uint64_t>(o.seed));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.requests));
  for (std::vector<int32_t>& p : prompts) {
    p.resize(static_cast<size_t>(o.prompt_tokens));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(o.vocab));
    if (o.bos >= 0) p[0] = static_cast<int32_t>(o.bos);
  }
  return prompts;
}

std::string completion_body(const Options& o, const std::vector<int32_t>& prompt, long long max_tokens, long long seed) {
  const json body = {{"model", o.model},
                     {"prompt", prompt},
                     {"max_tokens", max_tokens},
                     {"temperature", 0},
                     {"seed", seed},
                     {"ignore_eos", true},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  return body.dump();
}

// What one request measured (seconds).
struct Sample {
  double ttft = 0, tpot = -1, e2e = 0;
  double tail = 0;  // finish chunk -> end of the response ([DONE] and the last HTTP chunk)
  int64_t completion_tokens = 0, prompt_tokens = 0;
};

struct Connection {
  explicit Connection(net::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  bool open = false;
};

// The whole run. Single-threaded: everything below runs on the io_context's one thread.
class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int run() {
    boost::system::error_code ec;
    tcp::resolver resolver(ioc_);
    const tcp::resolver::results_type eps = resolver.resolve(o_.host, o_.port, ec);
    if (ec || eps.empty()) {
      std::fprintf(stderr, "supernode-http-bench: cannot resolve %s:%s: %s\n", o_.host.c_str(), o_.port.c_str(),
                   ec.message().c_str());
      return 1;
    }
    endpoint_ = eps.begin()->endpoint();
    const std::vector<std::vector<int32_t>> prompts = make_prompts(o_);
    for (size_t i = 0; i < prompts.size(); ++i) {
      bodies_.push_back(completion_body(o_, prompts[i], o_.max_tokens, static_cast<long long>(i) + 1));
    }
    for (long long s = 0; s < o_.streams; ++s) conns_.push_back(std::make_unique<Connection>(ioc_));

    // Not measured: every connection opened, the warm-up requests, /metrics before.
    net::co_spawn(ioc_, prepare(), net::detached);
    ioc_.run();
    if (!error_.empty()) return fail();
    std::fprintf(stderr, "supernode-http-bench: %lld streams, %lld requests, %lld prompt + %lld output tokens each, "
                 "to %s:%s model %s\n",
                 o_.streams, o_.requests, o_.prompt_tokens, o_.max_tokens, o_.host.c_str(), o_.port.c_str(),
                 o_.model.c_str());

    const double cpu0 = cpu_seconds();
    t_start_ = Steady::now();
    last_progress_ = t_start_;
    for (size_t s = 0; s < conns_.size(); ++s) net::co_spawn(ioc_, stream_loop(s), net::detached);
    ioc_.restart();
    ioc_.run();
    wall_ = seconds(Steady::now() - t_start_);
    client_cpu_ = cpu_seconds() - cpu0;
    progress(true);
    std::fputc('\n', stderr);
    if (!error_.empty()) return fail();

    net::co_spawn(ioc_, fetch_metrics(&after_), net::detached);
    ioc_.restart();
    ioc_.run();
    report();
    return 0;
  }

 private:
  int fail() const {
    std::fprintf(stderr, "supernode-http-bench: %s\n", error_.c_str());
    return 1;
  }

  void set_error(const std::string& e) {
    if (error_.empty()) error_ = e;
  }

  net::awaitable<bool> connect(Connection& c) {
    boost::system::error_code ec;
    c.stream.close();
    c.buffer.clear();
    co_await c.stream.async_connect(endpoint_, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      set_error("cannot connect to " + o_.host + ":" + o_.port + ": " + ec.message());
      co_return false;
    }
    c.stream.socket().set_option(tcp::no_delay(true), ec);
    c.open = true;
    co_return true;
  }

  net::awaitable<void> prepare() {
    for (std::unique_ptr<Connection>& c : conns_) {
      if (!co_await connect(*c)) co_return;
    }
    // A warm-up request of its own (other seed, so no prompt block of the workload gets
    // cached): the daemon repacks the weights on the first forward pass, which
    // serve-bench does at load time.
    std::mt19937_64 rng(static_cast<uint64_t>(o_.seed) ^ 0x9e3779b97f4a7c15ULL);
    for (long long w = 0; w < o_.warmup; ++w) {
      std::vector<int32_t> prompt(static_cast<size_t>(o_.prompt_tokens));
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(o_.vocab));
      if (o_.bos >= 0) prompt[0] = static_cast<int32_t>(o_.bos);
      const std::string body = completion_body(o_, prompt, 2, 1 << 30);
      Sample ignored;
      if (!co_await request(*conns_.front(), body, ignored)) co_return;
    }
    co_await fetch_metrics(&before_);
  }

  // One stream of the closed loop: the next request as soon as the last one finished.
  net::awaitable<void> stream_loop(size_t slot) {
    Connection& c = *conns_[slot];
    while (error_.empty() && next_ < bodies_.size()) {
      const size_t i = next_++;
      ++in_flight_;
      Sample s;
      const bool ok = co_await request(c, bodies_[i], s);
      --in_flight_;
      if (!ok) co_return;
      samples_.push_back(s);
      progress(false);
    }
  }

  // Sends one streaming completion on `c` and reads its events; false with error_ set.
  net::awaitable<bool> request(Connection& c, const std::string& body, Sample& out) {
    if (!c.open && !co_await connect(c)) co_return false;
    http::request<http::string_body> req{http::verb::post, o_.base_path + "/v1/completions", 11};
    req.set(http::field::host, o_.host + ":" + o_.port);
    req.set(http::field::authorization, "Bearer " + o_.key);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();

    // SSE bytes of the chunked body, as they arrive (the callback outlives the parser).
    std::string sse;
    auto on_chunk = [&sse](std::uint64_t, beast::string_view data, beast::error_code&) -> std::size_t {
      sse.append(data.data(), data.size());
      return data.size();
    };
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.on_chunk_body(on_chunk);

    boost::system::error_code ec;
    const Steady::time_point t_send = Steady::now();
    co_await http::async_write(c.stream, req, net::redirect_error(net::use_awaitable, ec));
    if (!ec) co_await http::async_read_header(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      c.open = false;
      set_error("POST /v1/completions: " + ec.message());
      co_return false;
    }
    if (parser.get().result() != http::status::ok) {
      co_await http::async_read(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
      set_error("POST /v1/completions: HTTP " + std::to_string(parser.get().result_int()) + ": " +
                (parser.get().body().empty() ? sse : parser.get().body()));
      c.open = false;
      co_return false;
    }

    std::optional<Steady::time_point> t_first, t_finish;
    bool done = false, usage = false;
    size_t consumed = 0;
    while (!parser.is_done()) {
      co_await http::async_read_some(c.stream, c.buffer, parser, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        c.open = false;
        set_error("reading the event stream: " + ec.message());
        co_return false;
      }
      const Steady::time_point now = Steady::now();
      // Whole events only ("data: ...\n\n"); a partial one waits for the next read.
      for (size_t end; (end = sse.find("\n\n", consumed)) != std::string::npos; consumed = end + 2) {
        std::string data;
        for (size_t line = consumed; line < end;) {
          size_t eol = sse.find('\n', line);
          if (eol == std::string::npos || eol > end) eol = end;
          if (sse.compare(line, 5, "data:") == 0) {
            size_t from = line + 5;
            if (from < eol && sse[from] == ' ') ++from;
            data.append(sse, from, eol - from);
          }
          line = eol + 1;
        }
        if (data.empty()) continue;
        if (data == "[DONE]") {
          done = true;
          continue;
        }
        const json ev = json::parse(data, nullptr, /*allow_exceptions=*/false);
        if (ev.is_discarded() || !ev.is_object()) {
          set_error("an event that is not JSON: " + data);
          co_return false;
        }
        if (auto e = ev.find("error"); e != ev.end()) {
          set_error("the server failed the request: " + e->dump());
          co_return false;
        }
        if (auto ch = ev.find("choices"); ch != ev.end() && ch->is_array() && !ch->empty()) {
          if (!t_first) t_first = now;
          if (auto fr = (*ch)[0].find("finish_reason"); fr != (*ch)[0].end() && !fr->is_null()) t_finish = now;
        }
        if (auto u = ev.find("usage"); u != ev.end() && u->is_object()) {
          usage = true;
          out.completion_tokens = u->value("completion_tokens", int64_t{0});
          out.prompt_tokens = u->value("prompt_tokens", int64_t{0});
        }
      }
    }
    const Steady::time_point t_end = Steady::now();
    c.open = parser.get().keep_alive();
    if (!c.open) c.stream.close();
    if (!done || !t_first || !t_finish || !usage) {
      set_error(std::string("the event stream ended without ") +
                (!t_first ? "any choice" : !t_finish ? "a finish_reason" : !usage ? "a usage chunk" : "[DONE]"));
      co_return false;
    }
    out.ttft = seconds(*t_first - t_send);
    out.e2e = seconds(*t_finish - t_send);
    out.tail = seconds(t_end - *t_finish);
    if (out.completion_tokens > 1) out.tpot = seconds(*t_finish - *t_first) / static_cast<double>(out.completion_tokens - 1);
    co_return true;
  }

  // The engine's counters for the model from GET /metrics, on a connection of its own;
  // left empty without --metrics-port.
  struct EngineCounters {
    std::optional<double> steps, preemptions, tokens_computed;
  };

  net::awaitable<void> fetch_metrics(EngineCounters* into) {
    if (o_.metrics_port == 0) co_return;
    Connection c(ioc_);
    boost::system::error_code ec;
    const tcp::endpoint at(endpoint_.address(), static_cast<uint16_t>(o_.metrics_port));
    co_await c.stream.async_connect(at, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set(http::field::host, o_.host + ":" + std::to_string(o_.metrics_port));
    http::response<http::string_body> res;
    co_await http::async_write(c.stream, req, net::redirect_error(net::use_awaitable, ec));
    if (!ec) co_await http::async_read(c.stream, c.buffer, res, net::redirect_error(net::use_awaitable, ec));
    if (ec || res.result() != http::status::ok) co_return;
    const std::string& text = res.body();
    auto counter = [&](const std::string& name) -> std::optional<double> {
      const std::string key = name + "{model=\"" + o_.model + "\"} ";
      const size_t at = text.find(key);
      if (at == std::string::npos) return std::nullopt;
      return std::strtod(text.c_str() + at + key.size(), nullptr);
    };
    into->steps = counter("supernode_engine_steps_total");
    into->preemptions = counter("supernode_preemptions_total");
    into->tokens_computed = counter("supernode_tokens_computed_total");
  }

  void progress(bool force) {
    const Steady::time_point now = Steady::now();
    if (!force && now - last_progress_ < std::chrono::milliseconds(250)) return;
    last_progress_ = now;
    int64_t out = 0;
    for (const Sample& s : samples_) out += s.completion_tokens;
    const double t = seconds(now - t_start_);
    std::fprintf(stderr, "\rsupernode-http-bench: %zu/%lld finished, %d in flight, %lld output tokens, %.1f tok/s, %.1f s   ",
                 samples_.size(), o_.requests, in_flight_, static_cast<long long>(out), t > 0 ? out / t : 0.0, t);
    std::fflush(stderr);
  }

  static long long delta(const std::optional<double>& a, const std::optional<double>& b) {
    return a && b ? static_cast<long long>(*b - *a) : -1;
  }

  void report() const {
    std::vector<double> ttft, tpot, e2e, tail;
    int64_t out_tokens = 0, prompt_total = 0;
    for (const Sample& s : samples_) {
      ttft.push_back(s.ttft);
      e2e.push_back(s.e2e);
      tail.push_back(s.tail);
      if (s.tpot >= 0) tpot.push_back(s.tpot);
      out_tokens += s.completion_tokens;
      prompt_total += s.prompt_tokens;
    }
    const double gen_tok_s = out_tokens / wall_;
    const double total_tok_s = static_cast<double>(out_tokens + prompt_total) / wall_;
    const long long steps = delta(before_.steps, after_.steps);
    const long long preemptions = delta(before_.preemptions, after_.preemptions);
    const std::string url = "http://" + o_.host + ":" + o_.port + o_.base_path;
    if (o_.json) {
      const std::string steps_text = steps >= 0 ? std::to_string(steps) : "null";
      const std::string preempt_text = preemptions >= 0 ? std::to_string(preemptions) : "null";
      std::printf("{\"model\":%s,\"url\":%s,\"transport\":\"http\",\"streams\":%lld,\"requests\":%lld,"
                  "\"prompt_tokens\":%lld,\"max_tokens\":%lld,"
                  "\"wall_s\":%.3f,\"output_tokens\":%lld,\"generation_tok_s\":%.3f,\"total_tok_s\":%.3f,"
                  "\"ttft_p50_s\":%.4f,\"ttft_p99_s\":%.4f,\"tpot_p50_s\":%.4f,\"tpot_p99_s\":%.4f,"
                  "\"e2e_p50_s\":%.4f,\"e2e_p99_s\":%.4f,\"steps\":%s,\"preemptions\":%s,"
                  "\"stream_tail_p50_s\":%.4f,\"stream_tail_p99_s\":%.4f,\"client_cpu_s\":%.3f}\n",
                  json(o_.model).dump().c_str(), json(url).dump().c_str(), o_.streams, o_.requests, o_.prompt_tokens,
                  o_.max_tokens, wall_, static_cast<long long>(out_tokens), gen_tok_s, total_tok_s,
                  percentile(ttft, 0.5), percentile(ttft, 0.99), percentile(tpot, 0.5), percentile(tpot, 0.99),
                  percentile(e2e, 0.5), percentile(e2e, 0.99), steps_text.c_str(), preempt_text.c_str(),
                  percentile(tail, 0.5), percentile(tail, 0.99), client_cpu_);
      return;
    }
    std::printf("model %s at %s, over HTTP (streaming /v1/completions, one keep-alive connection per stream)\n",
                o_.model.c_str(), url.c_str());
    std::printf("%lld streams, %lld requests of %lld prompt + %lld output tokens, %.2f s wall, ", o_.streams, o_.requests,
                o_.prompt_tokens, o_.max_tokens, wall_);
    if (steps >= 0) {
      std::printf("%lld steps, %lld preemptions\n", steps, preemptions);
    } else {
      std::printf("steps unknown (no /metrics)\n");
    }
    std::printf("| metric | p50 | p99 |\n|---|---|---|\n");
    std::printf("| TTFT | %.1f ms | %.1f ms |\n", percentile(ttft, 0.5) * 1e3, percentile(ttft, 0.99) * 1e3);
    std::printf("| time per output token | %.1f ms | %.1f ms |\n", percentile(tpot, 0.5) * 1e3, percentile(tpot, 0.99) * 1e3);
    std::printf("| end-to-end latency | %.2f s | %.2f s |\n", percentile(e2e, 0.5), percentile(e2e, 0.99));
    std::printf("generation throughput: %.1f tok/s (output tokens / wall time)\n", gen_tok_s);
    std::printf("total throughput: %.1f tok/s ((prompt + output tokens) / wall time)\n", total_tok_s);
    std::printf("after the finish chunk, the rest of the stream (usage, [DONE]): %.1f ms p50, %.1f ms p99\n",
                percentile(tail, 0.5) * 1e3, percentile(tail, 0.99) * 1e3);
    std::printf("client CPU: %.3f s (%.1f%% of one core over the wall time)\n", client_cpu_, 100 * client_cpu_ / wall_);
  }

  Options o_;
  net::io_context ioc_{1};
  tcp::endpoint endpoint_;
  std::vector<std::string> bodies_;  // request i's JSON body
  std::vector<std::unique_ptr<Connection>> conns_;
  size_t next_ = 0;                  // the next request to send
  int in_flight_ = 0;
  std::vector<Sample> samples_;      // in order of finishing
  std::string error_;                // the first failure; stops the loop
  EngineCounters before_, after_;
  Steady::time_point t_start_, last_progress_;
  double wall_ = 0, client_cpu_ = 0;
};

// http://HOST[:PORT][/PREFIX] into o; false when it is not such a URL.
bool parse_url(const std::string& url, Options& o) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return false;
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  o.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!o.base_path.empty() && o.base_path.back() == '/') o.base_path.pop_back();
  rest = rest.substr(0, slash);
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    o.host = rest.substr(0, colon);
    o.port = rest.substr(colon + 1);
  } else {
    o.host = rest;
    o.port = "80";
  }
  if (o.host.size() >= 2 && o.host.front() == '[' && o.host.back() == ']') o.host = o.host.substr(1, o.host.size() - 2);
  return !o.host.empty() && !o.port.empty();
}

int usage_error(const sn::Status& s) {
  std::fprintf(stderr, "supernode-http-bench: %s\n", s.message().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  sn::Args args("supernode-http-bench",
                "--url http://127.0.0.1:PORT --key KEY --model ID [--streams S] [--requests R] [--max-tokens N] "
                "[--prompt-tokens P] [--vocab N] [--bos ID] [--seed S] [--warmup N] [--json]",
                "serve-bench's workload (a) through a running supernoded: S streaming /v1/completions kept in\n"
                "flight over keep-alive connections (a new one when one finishes) until R have finished;\n"
                "prompts of P random token ids from serve-bench's generator and seed, greedy, EOS ignored,\n"
                "N tokens each. Reports TTFT, time per output token, end-to-end latency (p50/p99) and\n"
                "throughput as `supernode serve-bench` does, measured at the client. --vocab and --bos must\n"
                "be the model's (see `supernode inspect`) for the prompts to be serve-bench's.",
                {{{"--url"}, "URL", "the daemon, plain HTTP (http://HOST:PORT)", ""},
                 {{"--key"}, "KEY", "API key (Authorization: Bearer)", ""},
                 {{"--model"}, "ID", "model id as the daemon serves it (the GGUF file stem)", ""},
                 {{"--streams"}, "S", "requests kept in flight, one connection each", "16"},
                 {{"--requests"}, "R", "requests to finish in all", "2 x streams"},
                 {{"--max-tokens"}, "N", "tokens generated per request", "64"},
                 {{"--prompt-tokens"}, "P", "prompt tokens per request", "128"},
                 {{"--vocab"}, "N", "the model's vocabulary size (token ids are drawn below it)", "32000"},
                 {{"--bos"}, "ID", "the model's BOS id, put first in every prompt (-1: none)", "1"},
                 {{"--seed"}, "N", "seed of the random prompts", "1234"},
                 {{"--warmup"}, "N", "unmeasured requests (2 tokens each) before the run", "1"},
                 {{"--metrics-port"}, "PORT", "the daemon's metrics listener on the same host, for steps and "
                  "preemptions (0: none)", "0"},
                 {{"--json"}, "", "print one JSON object instead of a table", ""}});
  const sn::Status parsed = args.parse(argc, argv, 1);
  if (args.help_requested()) {
    std::string help = args.help_text();
    if (help.rfind("usage: supernode ", 0) == 0) help.replace(0, 17, "usage: ");
    std::fputs(help.c_str(), stdout);
    return 0;
  }
  if (!parsed.is_ok()) return usage_error(parsed);
  if (!args.positional().empty()) {
    return usage_error(sn::Status::invalid_argument("supernode-http-bench", "unexpected argument '" +
                                                                                args.positional().front() + "'"));
  }
  Options o;
  for (const char* required : {"--url", "--key", "--model"}) {
    if (!args.has(required)) {
      return usage_error(sn::Status::invalid_argument("supernode-http-bench", std::string(required) + " is required"));
    }
  }
  if (!parse_url(*args.value("--url"), o)) {
    return usage_error(sn::Status::invalid_argument(
        "--url", "'" + *args.value("--url") + "' is not http://HOST:PORT (HTTPS is not supported; run the daemon with "
                 "--plain-http on loopback)"));
  }
  o.key = *args.value("--key");
  o.model = *args.value("--model");
  sn::Result<long long> streams = args.integer("--streams", 16, 1, 4096);
  sn::Result<long long> requests = args.integer("--requests", streams.ok() ? *streams * 2 : 1, 1, 1 << 24);
  sn::Result<long long> max_tokens = args.integer("--max-tokens", 64, 1, 1 << 20);
  sn::Result<long long> prompt_tokens = args.integer("--prompt-tokens", 128, 1, 1 << 20);
  sn::Result<long long> vocab = args.integer("--vocab", 32000, 1, 1LL << 31);
  sn::Result<long long> bos = args.integer("--bos", 1, -1, (1LL << 31) - 1);
  sn::Result<long long> seed = args.integer("--seed", 1234, 0, (1LL << 62));
  sn::Result<long long> warmup = args.integer("--warmup", 1, 0, 1000);
  sn::Result<long long> metrics_port = args.integer("--metrics-port", 0, 0, 65535);
  for (const sn::Status* s : {&streams.status(), &requests.status(), &max_tokens.status(), &prompt_tokens.status(),
                              &vocab.status(), &bos.status(), &seed.status(), &warmup.status(),
                              &metrics_port.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  if (*bos >= *vocab) {
    return usage_error(sn::Status::invalid_argument("--bos", std::to_string(*bos) + " is not below --vocab " +
                                                                 std::to_string(*vocab)));
  }
  o.streams = *streams;
  o.requests = *requests;
  o.max_tokens = *max_tokens;
  o.prompt_tokens = *prompt_tokens;
  o.vocab = *vocab;
  o.bos = *bos;
  o.seed = *seed;
  o.warmup = *warmup;
  o.metrics_port = *metrics_port;
  o.json = args.has("--json");
  return Bench(std::move(o)).run();
}
