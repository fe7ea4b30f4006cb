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

// The shared data directory (models, references) or nullopt when absent. Prints
// "SKIP: <what> needs ../shared" to stderr when absent and `what` is given.
std::optional<std::string> shared_dir(const char* what = nullptr);

// A path in ../shared, or nullopt (with a skip message naming `rel`) when missing.
std::optional<std::string> shared_file(const std::string& rel);

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
