// See test_support.h.
#include "test_support.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "supernode/base/check.h"

namespace sn::testing {

namespace {
std::atomic<int> g_skipped{0};
}  // namespace

void skip(const std::string& why) {
  g_skipped.fetch_add(1);
  std::fprintf(stderr, "SKIP: %s\n", why.c_str());
}

int skipped_count() { return g_skipped.load(); }

bool pending_run() {
  const char* v = std::getenv("SN_TEST_PENDING");
  return v != nullptr && *v == '1';
}

bool is_pending_model(const std::string& name) {
  for (const char* arch : {"moe", "deepseek2"}) {
    if (name.find(arch) != std::string::npos) return true;
  }
  return false;
}

std::optional<std::string> shared_dir(const char* what) {
  const char* env = std::getenv("SUPERNODE_SHARED_DIR");
  std::string dir = env != nullptr ? env : "../shared";
  if (std::filesystem::is_directory(dir)) return dir;
  if (what != nullptr) skip(std::string(what) + " needs ../shared (not found at " + dir + ")");
  return std::nullopt;
}

std::optional<std::string> shared_file(const std::string& rel) {
  std::optional<std::string> dir = shared_dir();
  if (dir && std::filesystem::exists(*dir + "/" + rel)) return *dir + "/" + rel;
  skip("needs ../shared/" + rel);
  return std::nullopt;
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/sn-test-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  SN_CHECK(mkdtemp(buf.data()) != nullptr) << "mkdtemp " << pattern;
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SN_CHECK(in.good()) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  SN_CHECK(out.good()) << "cannot write " << path;
}

std::string bin_dir() { return SN_BIN_DIR; }

}  // namespace sn::testing
