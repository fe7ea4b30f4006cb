// SN_CHECK failure reporting. See check.h.
#include "supernode/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace sn::detail {

CheckFailure::CheckFailure(const char* file, int line, const char* condition) {
  stream_ << file << ":" << line << ": check failed: " << condition << " ";
}

CheckFailure::~CheckFailure() {
  std::string msg = stream_.str();
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sn::detail
