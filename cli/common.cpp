// Plumbing shared by the subcommands. See commands.h.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"

namespace sn::cli {

int usage_error(const Status& s) {
  std::fprintf(stderr, "supernode: %s\n", s.message().c_str());
  return 2;
}

int runtime_error(const Status& s) {
  std::fprintf(stderr, "supernode: %s\n", s.to_string().c_str());
  return 1;
}

int parse_or_exit(Args& args, int argc, char** argv) {
  Status s = args.parse(argc, argv, 2);
  if (!s.is_ok()) return usage_error(s);
  if (args.help_requested()) {
    std::fputs(args.help_text().c_str(), stdout);
    return 0;
  }
  return -1;
}

Result<Runtime> load_runtime(const std::string& model_path, int n_threads) {
  const auto t0 = std::chrono::steady_clock::now();
  Runtime rt;
  Result<std::unique_ptr<engine::Model>> m = engine::Model::load(model_path);
  if (!m.ok()) return m.status();
  rt.model = std::move(*m);
  rt.pool = std::make_unique<hal::ThreadPool>(hal::ThreadPool::Options{.n_threads = n_threads, .pin = true});
  rt.backend = std::make_unique<hal::CpuBackend>(*rt.pool, hal::best_isa());
  // Repack the weights for the kernels now, so the first request does not pay for it.
  {
    engine::KvCache cache(rt.model->config(), 1);
    engine::Forward warm(*rt.model, *rt.backend, cache);
  }
  const engine::ModelConfig& c = rt.model->config();
  std::fprintf(stderr, "supernode: loaded %s: %s, %d layers, n_embd %d, vocab %d, %.0f MB of weights, in %.2f s "
               "(%d threads, %s kernels)\n",
               model_path.c_str(), engine::arch_name(c.arch), c.n_layer, c.n_embd, c.n_vocab,
               rt.model->weight_bytes() / 1e6,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), rt.pool->size(),
               hal::isa_name(rt.backend->isa()));
  return rt;
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(path, "cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io_error(path, "read failed");
  return ss.str();
}

}  // namespace sn::cli
