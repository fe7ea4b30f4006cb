// The `supernode` subcommands, one function each, called by main.cpp with the full argv
// (argv[1] is the command name). Each returns the process exit code: 0 on success, 1 on
// a runtime error, 2 on a usage error; diagnostics go to stderr, results to stdout.
#pragma once

#include <memory>
#include <string>

#include "supernode/base/args.h"
#include "supernode/engine/model.h"
#include "supernode/hal/cpu_backend.h"

namespace sn::cli {

int cmd_run(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_serve_bench(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_hw(int argc, char** argv);
int cmd_gen_model(int argc, char** argv);
int cmd_render_template(int argc, char** argv);
int cmd_keys(int argc, char** argv);
int cmd_models(int argc, char** argv);
int cmd_moderation(int argc, char** argv);
int cmd_tenants(int argc, char** argv);
int cmd_usage(int argc, char** argv);
int cmd_audit(int argc, char** argv);
int cmd_backup(int argc, char** argv);
int cmd_restore(int argc, char** argv);
int cmd_status(int argc, char** argv);
int cmd_update(int argc, char** argv);

// Shared plumbing.
int usage_error(const Status& s);
int runtime_error(const Status& s);
// Parses args; returns -1 to continue, or an exit code (help printed, or usage error).
int parse_or_exit(Args& args, int argc, char** argv);

// A loaded model with a thread pool and backend sized by -t.
struct Runtime {
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<hal::ThreadPool> pool;
  std::unique_ptr<hal::CpuBackend> backend;
};
[[nodiscard]] Result<Runtime> load_runtime(const std::string& model_path, int n_threads);

// Reads a whole file; errors name it.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

}  // namespace sn::cli
