// Thin RAII over the SQLite C API for the state store: a connection and prepared
// statements whose failures come back as Status values naming the SQL that failed.
// Thread safety: none; a Db and its statements belong to one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "supernode/base/status.h"

namespace sn::storage::sql {

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    if (this != &o) {
      if (s_ != nullptr) sqlite3_finalize(s_);
      db_ = o.db_;
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (s_ != nullptr) sqlite3_finalize(s_);
  }

  // Binds by 1-based index; chainable.
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    // An empty view may have no data pointer, which SQLite would bind as NULL, not ''.
    sqlite3_bind_text(s_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_blob(int i, std::span<const uint8_t> v) {
    static const uint8_t kEmpty = 0;
    sqlite3_bind_blob(s_, i, v.data() != nullptr ? v.data() : &kEmpty, static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  Stmt& bind(int i, std::optional<int64_t> v) { return v ? bind(i, *v) : bind_null(i); }

  // Back to before the first step, bindings cleared, for another run.
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  // Next row: true when there is one, false when done; an error otherwise.
  [[nodiscard]] Result<bool> step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return error("step");
  }
  // Runs to completion (for statements without rows).
  [[nodiscard]] Status run() {
    Result<bool> r = step();
    if (!r.ok()) return r.status();
    return Status::ok();
  }

  [[nodiscard]] int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  [[nodiscard]] bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p),
                                                      static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  [[nodiscard]] std::string blob(int col) const {
    const void* p = sqlite3_column_blob(s_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p),
                                                      static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }

 private:
  [[nodiscard]] Status error(const char* what) const {
    const char* sql = sqlite3_sql(s_);
    return Status::io_error(std::string("state db: ") + what + " of '" + (sql != nullptr ? sql : "?") + "'",
                            sqlite3_errmsg(db_));
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
};

class Db {
 public:
  Db() = default;
  Db(Db&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  Db& operator=(Db&& o) noexcept {
    if (this != &o) {
      close();
      db_ = std::exchange(o.db_, nullptr);
    }
    return *this;
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { close(); }

  // flags: SQLITE_OPEN_* (NOMUTEX is added: callers serialize).
  [[nodiscard]] static Result<Db> open(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    Db db;
    db.db_ = raw;
    if (rc != SQLITE_OK) {
      return Status::io_error("state db " + path, raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    }
    sqlite3_busy_timeout(raw, 10'000);
    sqlite3_extended_result_codes(raw, 1);
    return db;
  }

  [[nodiscard]] Result<Stmt> prepare(std::string_view sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK) {
      return Status::io_error("state db: prepare '" + std::string(sql) + "'", sqlite3_errmsg(db_));
    }
    return Stmt(db_, s);
  }

  // Runs one or more statements without results.
  [[nodiscard]] Status exec(std::string_view sql) {
    char* err = nullptr;
    const std::string s(sql);
    if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      return Status::io_error("state db: '" + s.substr(0, 80) + "'", msg);
    }
    return Status::ok();
  }

  [[nodiscard]] sqlite3* raw() const { return db_; }

 private:
  void close() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  sqlite3* db_ = nullptr;
};

}  // namespace sn::storage::sql
