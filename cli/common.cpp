// Plumbing shared by the subcommands. See commands.h.
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
  Runtime rt;
  Result<std::unique_ptr<engine::Model>> m = engine::Model::load(model_path);
  if (!m.ok()) return m.status();
  rt.model = std::move(*m);
  rt.pool = std::make_unique<hal::ThreadPool>(hal::ThreadPool::Options{.n_threads = n_threads, .pin = true});
  rt.backend = std::make_unique<hal::CpuBackend>(*rt.pool, hal::best_isa());
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
