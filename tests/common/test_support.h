// Helpers shared by all test executables: where ../shared is, deterministic random
// inputs, temporary directories.
// Thread safety: call from the test thread.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace sn::testing {

// The shared data directory (models, references) or nullopt when absent. Reports a skip
// ("<what> needs ../shared") when absent and `what` is given.
std::optional<std::string> shared_dir(const char* what = nullptr);

// A path in ../shared, or nullopt (reporting a skip that names `rel`) when missing.
std::optional<std::string> shared_file(const std::string& rel);

// Reports a test (or part of one) that could not run here: prints "SKIP: <why>" to stderr
// and counts it. A run with skips and no failure exits with kSkipExitCode, which ctest
// reports as skipped (SKIP_RETURN_CODE), so a green summary never hides tests that did not
// run. Call it, then return from the test.
inline constexpr int kSkipExitCode = 77;
void skip(const std::string& why);
// Skips reported so far in this process.
int skipped_count();

// Tests of features still to come (group ModelPending: WordPiece vectors, mixture-of-
// experts references) run, and report their skips, only in their own ctest entry
// (<room>.pending, which sets SN_TEST_PENDING=1), so the room's other entries show passed
// or failed for what they test, and the summary still lists what did not run.
bool pending_run();
// Whether a reference model in ../shared/reference/llamacpp is one of those
// (mixture-of-experts architectures: qwen3moe, glm4moe, deepseek2).
bool is_pending_model(const std::string& name);

// A fresh empty directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Whole-file helpers; abort the test on I/O errors.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

// The directory holding our binaries (build/bin).
std::string bin_dir();

}  // namespace sn::testing
