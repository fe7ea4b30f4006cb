// The main() of every room's CppUTest executable. A run in which something reported a
// skip (sn::testing::skip) and nothing failed exits with 77, ctest's SKIP_RETURN_CODE.
#include <CppUTest/CommandLineTestRunner.h>
#include <CppUTest/MemoryLeakWarningPlugin.h>

#include <cstdio>

#include "test_support.h"

int main(int argc, char** argv) {
  // Leak checking is LeakSanitizer's job (the ASan CI build); CppUTest's own detector
  // misreports process-wide caches created lazily inside a test.
  MemoryLeakWarningPlugin::turnOffNewDeleteOverloads();
  const int rc = CommandLineTestRunner::RunAllTests(argc, argv);
  if (rc == 0 && sn::testing::skipped_count() > 0) {
    std::fprintf(stderr, "%d skip(s) reported: exiting %d so that ctest counts this run as skipped\n",
                 sn::testing::skipped_count(), sn::testing::kSkipExitCode);
    return sn::testing::kSkipExitCode;
  }
  return rc;
}
