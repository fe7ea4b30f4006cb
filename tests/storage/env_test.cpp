// The POSIX Env against a temporary directory, and FaultInjectionEnv's crash model and
// fault switches on top of it.
#include <algorithm>
#include <string>
#include <vector>

#include "supernode/storage/env.h"
#include "supernode/storage/fault_injection_env.h"
#include "test_support.h"

#include <CppUTest/TestHarness.h>

using namespace sn::storage;
using sn::Status;

namespace {

void check_ok(const Status& s) { CHECK_TRUE_TEXT(s.is_ok(), s.to_string().c_str()); }

std::unique_ptr<File> open_or_fail(Env& env, const std::string& path, OpenMode mode) {
  sn::Result<std::unique_ptr<File>> f = env.open_file(path, mode);
  CHECK_TRUE_TEXT(f.ok(), f.status().to_string().c_str());
  return std::move(*f);
}

std::string contents(Env& env, const std::string& path) {
  std::unique_ptr<File> f = open_or_fail(env, path, OpenMode::kRead);
  sn::Result<uint64_t> size = f->size();
  CHECK_TRUE(size.ok());
  std::string s(*size, '\0');
  sn::Result<size_t> n = read_full(*f, 0, s);
  CHECK_TRUE(n.ok());
  s.resize(*n);
  return s;
}

bool exists(Env& env, const std::string& path) { return env.open_file(path, OpenMode::kRead).ok(); }

}  // namespace

TEST_GROUP(PosixEnv) {
  sn::testing::TempDir tmp;
};

TEST(PosixEnv, FilesDirectoriesAndErrorsNameTheFile) {
  Env& env = posix_env();
  std::string dir = tmp.file("a/b");
  check_ok(env.create_dirs(dir));
  check_ok(env.create_dirs(dir));  // exists: fine
  {
    std::unique_ptr<File> f = open_or_fail(env, dir + "/x", OpenMode::kWriteTruncate);
    check_ok(write_all(*f, 0, "hello"));
    check_ok(write_all(*f, 5, " world"));
    check_ok(f->sync());
    sn::Result<uint64_t> size = f->size();
    CHECK_TRUE(size.ok());
    LONGS_EQUAL(11, *size);
  }
  check_ok(env.sync_dir(dir));
  STRCMP_EQUAL("hello world", contents(env, dir + "/x").c_str());
  check_ok(env.rename_file(dir + "/x", dir + "/y"));
  sn::Result<std::vector<std::string>> names = env.list_dir(dir);
  CHECK_TRUE(names.ok());
  LONGS_EQUAL(1, names->size());
  STRCMP_EQUAL("y", (*names)[0].c_str());
  sn::Result<uint64_t> free = env.free_bytes(dir);
  CHECK_TRUE(free.ok() && *free > 0);

  sn::Result<std::unique_ptr<File>> missing = env.open_file(dir + "/x", OpenMode::kRead);
  CHECK_FALSE(missing.ok());
  CHECK_TRUE(missing.status().code() == Status::Code::kNotFound);
  CHECK_TRUE(missing.status().message().find(dir + "/x") != std::string::npos);
  CHECK_TRUE(missing.status().message().find("No such file") != std::string::npos);
  check_ok(env.remove_file(dir + "/y"));
  CHECK_TRUE(env.remove_file(dir + "/y").code() == Status::Code::kNotFound);
  CHECK_FALSE(env.list_dir(tmp.file("nope")).ok());
  CHECK_TRUE(env.now_micros() > 0);
}

TEST_GROUP(FaultInjectionEnv) {
  sn::testing::TempDir tmp;
  FaultInjectionEnv env{posix_env()};
};

TEST(FaultInjectionEnv, CrashKeepsOnlySyncedBytesOfDurableEntries) {
  std::string a = tmp.file("a"), b = tmp.file("b");
  std::unique_ptr<File> fa = open_or_fail(env, a, OpenMode::kWriteTruncate);
  check_ok(write_all(*fa, 0, "synced"));
  check_ok(fa->sync());
  check_ok(write_all(*fa, 6, "-lost"));
  fa.reset();
  std::unique_ptr<File> fb = open_or_fail(env, b, OpenMode::kWriteTruncate);
  check_ok(write_all(*fb, 0, "never dir-synced"));
  check_ok(fb->sync());
  fb.reset();
  check_ok(env.sync_dir(tmp.path()));
  std::unique_ptr<File> fc = open_or_fail(env, tmp.file("c"), OpenMode::kWriteTruncate);
  check_ok(write_all(*fc, 0, "new entry"));
  check_ok(fc->sync());
  fc.reset();
  STRCMP_EQUAL("synced-lost", contents(env, a).c_str());
  check_ok(env.simulate_crash());
  STRCMP_EQUAL("synced", contents(env, a).c_str());
  STRCMP_EQUAL("never dir-synced", contents(env, b).c_str());
  CHECK_FALSE(exists(env, tmp.file("c")));
}

TEST(FaultInjectionEnv, RenameOfUnsyncedDataLeavesAnEmptyFile) {
  // Why the block store fsyncs before it renames.
  std::unique_ptr<File> f = open_or_fail(env, tmp.file("t"), OpenMode::kWriteTruncate);
  check_ok(write_all(*f, 0, "payload"));
  f.reset();
  check_ok(env.rename_file(tmp.file("t"), tmp.file("final")));
  check_ok(env.sync_dir(tmp.path()));
  check_ok(env.simulate_crash());
  CHECK_TRUE(exists(env, tmp.file("final")));
  STRCMP_EQUAL("", contents(env, tmp.file("final")).c_str());
}

TEST(FaultInjectionEnv, SwitchesFailOrBendWrites) {
  std::unique_ptr<File> f = open_or_fail(env, tmp.file("x"), OpenMode::kWriteTruncate);
  env.set_disk_full(true);
  Status s = write_all(*f, 0, "data");
  CHECK_TRUE(s.code() == Status::Code::kResourceExhausted);
  CHECK_TRUE(s.message().find(tmp.file("x")) != std::string::npos);
  CHECK_TRUE(s.message().find("No space left on device") != std::string::npos);
  sn::Result<uint64_t> free = env.free_bytes(tmp.path());
  CHECK_TRUE(free.ok() && *free == 0);
  env.set_disk_full(false);

  env.set_short_writes(true);
  sn::Result<size_t> n = f->pwrite(0, std::string(100, 'a'));
  CHECK_TRUE(n.ok());
  LONGS_EQUAL(50, *n);
  check_ok(write_all(*f, 0, std::string(100, 'b')));
  STRCMP_EQUAL(std::string(100, 'b').c_str(), contents(env, tmp.file("x")).c_str());
  env.set_short_writes(false);

  std::unique_ptr<File> g = open_or_fail(env, tmp.file("torn"), OpenMode::kWriteTruncate);
  env.set_torn_writes(true);
  check_ok(write_all(*g, 0, std::string(100, 'c')));  // reported whole
  env.set_torn_writes(false);
  LONGS_EQUAL(50, contents(env, tmp.file("torn")).size());

  env.set_sync_fails(true);
  CHECK_TRUE(f->sync().code() == Status::Code::kIoError);
  CHECK_TRUE(env.sync_dir(tmp.path()).code() == Status::Code::kIoError);
  env.set_sync_fails(false);
  uint64_t syncs = env.file_syncs();
  check_ok(f->sync());
  LONGS_EQUAL(syncs + 1, env.file_syncs());
}

TEST(FaultInjectionEnv, CrashAfterStopsMutationsButNotReads) {
  std::unique_ptr<File> f = open_or_fail(env, tmp.file("x"), OpenMode::kWriteTruncate);
  check_ok(write_all(*f, 0, "ab"));
  env.set_crash_after(1);
  check_ok(write_all(*f, 2, "cd"));
  CHECK_FALSE(env.stopped());
  Status s = write_all(*f, 4, "ef");
  CHECK_TRUE(env.stopped());
  CHECK_TRUE(s.message().find("simulated crash") != std::string::npos);
  CHECK_FALSE(env.rename_file(tmp.file("x"), tmp.file("y")).is_ok());
  STRCMP_EQUAL("abcd", contents(env, tmp.file("x")).c_str());
  f.reset();
  check_ok(env.simulate_crash());
  CHECK_FALSE(env.stopped());
  CHECK_FALSE(exists(env, tmp.file("x")));  // created, never dir-synced
  uint64_t t = env.now_micros();
  env.advance_clock(5);
  LONGS_EQUAL(t + 5, env.now_micros());
}
