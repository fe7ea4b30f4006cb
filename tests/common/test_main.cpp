// The main() of every room's CppUTest executable.
#include <CppUTest/CommandLineTestRunner.h>
#include <CppUTest/MemoryLeakWarningPlugin.h>

int main(int argc, char** argv) {
  // Leak checking is LeakSanitizer's job (the ASan CI build); CppUTest's own detector
  // misreports process-wide caches created lazily inside a test.
  MemoryLeakWarningPlugin::turnOffNewDeleteOverloads();
  return CommandLineTestRunner::RunAllTests(argc, argv);
}
