// Renders a parsed Program (ast.h) with jinja2's semantics as transformers configures it:
// default Undefined, ImmutableSandboxedEnvironment (no attribute access beyond data and a
// whitelist of str/dict/list methods; no mutating methods), loopcontrols, and the globals
// raise_exception, strftime_now, namespace, range, dict. Called by ChatTemplate::render.
// Thread safety: one render per Interpreter; Programs may be shared between threads.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "jinja/ast.h"

namespace sn::engine::jinja {

// See ChatTemplateLimits.
struct RenderLimits {
  size_t max_output_bytes = 16u << 20;
  uint64_t max_loop_iterations = 1'000'000;
  int max_call_depth = 64;
  size_t max_value_bytes = 16u << 20;
  uint64_t max_alloc_bytes = 256u << 20;
  uint64_t max_steps = 10'000'000;
  int max_eval_depth = 500;
};

// jinja2's compile-time check: a filter or test that does not exist fails the whole
// template unless it sits in an `if` statement or an inline if-expression (where jinja2
// defers the error to when it is reached). Throws JinjaError naming the line.
void check_program(const Program& program);

// Renders `program` with top-level `variables` under `limits` (a Budget in force on
// this thread for the duration). Throws JinjaError on failure; kLimit when a limit is hit.
std::string render_program(const Program& program, const std::vector<std::pair<std::string, Value>>& variables,
                           const std::tm& now, const RenderLimits& limits);

}  // namespace sn::engine::jinja
