// `supernode bench`: prompt-processing and generation speed as llama-bench measures them
// (pp: one batch of P tokens from an empty context; tg: N single-token steps from an
// empty context), the median of repeats after a warm-up, and in the same run the memory
// read bandwidth with the same threads, so generation can be reported as a fraction of
// its roofline (weight bytes streamed per token x tokens/s / bandwidth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "supernode/hal/bandwidth.h"

namespace sn::cli {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Args args("bench", "-m MODEL [-p 128] [-n 64] [-t 2] [-r 3] [--json]",
            "Measures prompt processing (pp) and generation (tg) tokens/s, the median of repeats after\n"
            "one warm-up, and the memory read bandwidth with the same threads in the same run.",
            {{{"-m", "--model"}, "FILE", "GGUF model", ""},
             {{"-p", "--n-prompt"}, "N", "prompt tokens (0: skip pp)", "128"},
             {{"-n", "--n-gen"}, "N", "generated tokens (0: skip tg)", "64"},
             {{"-t", "--threads"}, "N", "compute threads", "one per physical core"},
             {{"-r", "--repetitions"}, "N", "repeats of each test", "3"},
             {{"--bandwidth-mb"}, "MB", "buffer for the bandwidth test (0: skip)", "1024"},
             {{"--json"}, "", "print one JSON object instead of a table", ""}});
  if (int rc = parse_or_exit(args, argc, argv); rc >= 0) return rc;
  if (!args.has("-m")) return usage_error(Status::invalid_argument("bench", "-m MODEL is required"));
  Result<long long> n_prompt = args.integer("-p", 128, 0, 1 << 16);
  Result<long long> n_gen = args.integer("-n", 64, 0, 1 << 16);
  Result<long long> threads = args.integer("-t", 0, 0, 1024);
  Result<long long> reps = args.integer("-r", 3, 1, 1000);
  Result<long long> bw_mb = args.integer("--bandwidth-mb", 1024, 0, 1 << 20);
  for (const Status* s : {&n_prompt.status(), &n_gen.status(), &threads.status(), &reps.status(), &bw_mb.status()}) {
    if (!s->is_ok()) return usage_error(*s);
  }
  Result<Runtime> rt = load_runtime(*args.value("-m"), static_cast<int>(*threads));
  if (!rt.ok()) return runtime_error(rt.status());
  const engine::Model& model = *rt->model;
  const int32_t n_vocab = model.config().n_vocab;
  const int32_t bos = std::max(model.tokenizer().bos(), 0);
  engine::Session session(model, *rt->backend, static_cast<int32_t>(std::max(*n_prompt, *n_gen) + 1));
  std::mt19937 rng(1234);
  std::vector<float> logits;
  using Clock = std::chrono::steady_clock;

  auto run_pp = [&]() -> Result<double> {
    std::vector<int32_t> tokens(*n_prompt);
    tokens[0] = bos;
    for (size_t i = 1; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng() % n_vocab);
    session.reset();
    const auto t0 = Clock::now();
    SN_RETURN_IF_ERROR(session.eval(tokens, &logits, false, static_cast<int32_t>(*n_prompt)));
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto run_tg = [&]() -> Result<double> {
    session.reset();
    int32_t token = bos;
    const auto t0 = Clock::now();
    for (long long i = 0; i < *n_gen; ++i) {
      const int32_t one[1] = {token};
      SN_RETURN_IF_ERROR(session.eval(one, &logits));
      token = static_cast<int32_t>(rng() % n_vocab);
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };

  auto measure = [&](auto&& fn, long long n_tokens, const char* what, double* tok_s, std::vector<double>* samples) -> Status {
    if (n_tokens == 0) return Status::ok();
    std::fprintf(stderr, "bench: %s warm-up...\n", what);
    Result<double> w = fn();
    if (!w.ok()) return w.status();
    for (long long r = 0; r < *reps; ++r) {
      Result<double> s = fn();
      if (!s.ok()) return s.status();
      samples->push_back(n_tokens / *s);
      std::fprintf(stderr, "bench: %s %lld/%lld: %.2f tok/s\n", what, r + 1, *reps, samples->back());
    }
    *tok_s = median(*samples);
    return Status::ok();
  };
  double pp = 0, tg = 0;
  std::vector<double> pp_samples, tg_samples;
  if (Status s = measure(run_pp, *n_prompt, "pp", &pp, &pp_samples); !s.is_ok()) return runtime_error(s);
  if (Status s = measure(run_tg, *n_gen, "tg", &tg, &tg_samples); !s.is_ok()) return runtime_error(s);
  double bw = 0;
  if (*bw_mb > 0) {
    std::fprintf(stderr, "bench: memory read bandwidth (%lld MB buffer)...\n", *bw_mb);
    bw = hal::measure_read_bandwidth_gbs(*rt->pool, static_cast<size_t>(*bw_mb) << 20, 5);
  }
  const double weight_gb = model.weight_bytes() / 1e9;
  const double tg_gbs = tg * weight_gb;
  const double roofline = bw > 0 ? tg_gbs / bw : 0;
  const std::string path = *args.value("-m");
  if (args.has("--json")) {
    auto list = [](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", v[i]);
        s += buf;
      }
      return s + "]";
    };
    std::printf("{\"model\":\"%s\",\"weight_bytes\":%llu,\"threads\":%d,\"isa\":\"%s\",\"n_prompt\":%lld,\"n_gen\":%lld,"
                "\"pp_tok_s\":%.3f,\"pp_samples\":%s,\"tg_tok_s\":%.3f,\"tg_samples\":%s,"
                "\"read_bandwidth_gbs\":%.2f,\"tg_weight_gbs\":%.2f,\"tg_roofline_fraction\":%.4f}\n",
                path.c_str(), static_cast<unsigned long long>(model.weight_bytes()), rt->pool->size(),
                hal::isa_name(rt->backend->isa()), *n_prompt, *n_gen, pp, list(pp_samples).c_str(), tg,
                list(tg_samples).c_str(), bw, tg_gbs, roofline);
  } else {
    std::printf("| model | size | threads | kernels | test | tok/s |\n|---|---|---|---|---|---|\n");
    if (*n_prompt > 0) {
      std::printf("| %s | %.0f MB | %d | %s | pp%lld | %.2f |\n", path.c_str(), weight_gb * 1e3, rt->pool->size(),
                  hal::isa_name(rt->backend->isa()), *n_prompt, pp);
    }
    if (*n_gen > 0) {
      std::printf("| %s | %.0f MB | %d | %s | tg%lld | %.2f |\n", path.c_str(), weight_gb * 1e3, rt->pool->size(),
                  hal::isa_name(rt->backend->isa()), *n_gen, tg);
    }
    if (bw > 0) {
      std::printf("memory read bandwidth: %.1f GB/s; generation streams %.1f GB/s of weights = %.0f%% of that roofline\n",
                  bw, tg_gbs, roofline * 100);
    }
  }
  return 0;
}

}  // namespace sn::cli
