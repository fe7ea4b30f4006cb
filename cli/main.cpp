// `supernode`: the command-line face of the engine, after llama.cpp's tools (which users
// know): run, tokenize, perplexity, bench, logits, inspect, hw, gen-model, render-template;
// the admin commands that talk to supernoded (keys, tenants, usage, audit, backup, status);
// and signed offline updates (update verify/apply/make).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"run", sn::cli::cmd_run, "generate text from a prompt"},
    {"tokenize", sn::cli::cmd_tokenize, "print the token ids of a text"},
    {"perplexity", sn::cli::cmd_perplexity, "measure perplexity over a text file (llama.cpp's method)"},
    {"bench", sn::cli::cmd_bench, "measure prompt processing and generation speed"},
    {"serve-bench", sn::cli::cmd_serve_bench, "replay a serving workload against the scheduler in-process"},
    {"logits", sn::cli::cmd_logits, "print the top-k logits at every prompt position as JSON"},
    {"inspect", sn::cli::cmd_inspect, "print a GGUF file's metadata and tensor table"},
    {"hw", sn::cli::cmd_hw, "print what the hardware layer found"},
    {"gen-model", sn::cli::cmd_gen_model, "write a tiny GGUF model with random weights"},
    {"render-template", sn::cli::cmd_render_template, "render a chat template with a conversation (as transformers does)"},
    {"keys", sn::cli::cmd_keys, "create, list and revoke API keys (through the daemon's admin socket)"},
    {"tenants", sn::cli::cmd_tenants, "create and list tenants (admin socket)"},
    {"models", sn::cli::cmd_models, "import, list, load, unload and remove models (admin socket)"},
    {"moderation", sn::cli::cmd_moderation, "content moderation's sensitive terms (admin socket)"},
    {"usage", sn::cli::cmd_usage, "usage per key per minute (admin socket)"},
    {"audit", sn::cli::cmd_audit, "verify the audit log's hash chain (admin socket)"},
    {"backup", sn::cli::cmd_backup, "an online backup of the daemon's state (admin socket)"},
    {"restore", sn::cli::cmd_restore, "replace the stopped daemon's state with a checked backup"},
    {"status", sn::cli::cmd_status, "what the daemon serves now (admin socket)"},
    {"update", sn::cli::cmd_update, "verify, apply (with rollback) and make signed offline update bundles"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: supernode COMMAND [options]   (supernode COMMAND --help for details)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-16s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  // `supernode --admin-socket PATH COMMAND ...`: the admin commands' socket, given first.
  if (argc >= 3 && std::strcmp(argv[1], "--admin-socket") == 0) {
    setenv("SUPERNODE_ADMIN_SOCKET", argv[2], 1);
    argv[2] = argv[0];
    argv += 2;
    argc -= 2;
  }
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    print_usage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("supernode %s\n", SUPERNODE_VERSION);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (cmd == c.name) return c.fn(argc, argv);
  }
  std::fprintf(stderr, "supernode: unknown command '%s'\n", cmd.c_str());
  print_usage(stderr);
  return 2;
}
