// The daemon's logging: stderr lines or journal entries. See log.h.
#include "supernode/base/mutex.h"
#include "supernode/daemon/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <systemd/sd-journal.h>

namespace sn::daemon {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<bool> g_prompts{false};
// Keeps lines of concurrent writers whole; a single write() already does for short lines.
sn::Mutex g_stderr_mu;

int priority_of(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return LOG_DEBUG;
    case LogLevel::kInfo: return LOG_INFO;
    case LogLevel::kWarning: return LOG_WARNING;
    case LogLevel::kError: return LOG_ERR;
  }
  return LOG_INFO;
}

void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, std::string_view v) {
  const bool quote = v.empty() || v.find_first_of(" \"=[]") != std::string_view::npos;
  if (!quote) {
    append_escaped(out, v);
    return;
  }
  out += '"';
  for (const char c : v) {
    if (c == '"') {
      out += "\\\"";
    } else {
      append_escaped(out, std::string_view(&c, 1));
    }
  }
  out += '"';
}

// Journal field names: A-Z, 0-9 and '_', not starting with a digit or '_'.
std::string journal_field_name(std::string_view name) {
  std::string out = "SN_";
  for (const char c : name) {
    if (c >= 'a' && c <= 'z') out += static_cast<char>(c - 'a' + 'A');
    else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) out += c;
    else out += '_';
  }
  return out;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

void send_to_journal(LogLevel level, std::string_view message, const LogFields& fields) {
  std::vector<std::string> parts;
  parts.reserve(8 + fields.extra.size());
  parts.push_back("MESSAGE=" + std::string(message));
  parts.push_back("PRIORITY=" + std::to_string(priority_of(level)));
  parts.emplace_back("SYSLOG_IDENTIFIER=supernoded");
  if (fields.request_id) parts.push_back("SN_REQUEST_ID=" + *fields.request_id);
  if (fields.tenant) parts.push_back("SN_TENANT=" + *fields.tenant);
  if (fields.model) parts.push_back("SN_MODEL=" + *fields.model);
  if (fields.key_id) parts.push_back("SN_KEY_ID=" + *fields.key_id);
  for (const auto& [name, value] : fields.extra) parts.push_back(journal_field_name(name) + "=" + value);
  std::vector<iovec> iov(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    iov[i].iov_base = parts[i].data();
    iov[i].iov_len = parts[i].size();
  }
  // sd_journal_sendv adds CODE_* fields only through the macros; we have no use for them.
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
    // journald is gone (stopping, or restarting): keep the entry on stderr, which the
    // journal's stream reads once it is back.
    const std::string line = format_log_line(level, message, fields);
    sn::MutexLock lock(g_stderr_mu);
    write_all(STDERR_FILENO, line);
  }
}

}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (const LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (name == log_level_name(l)) return l;
  }
  return std::nullopt;
}

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }
bool log_enabled(LogLevel level) { return level >= log_level(); }

void set_log_prompts(bool enabled) { g_prompts.store(enabled, std::memory_order_relaxed); }
bool log_prompts_enabled() { return g_prompts.load(std::memory_order_relaxed); }

std::string format_log_line(LogLevel level, std::string_view message, const LogFields& fields) {
  std::string out = "supernoded: ";
  out += log_level_name(level);
  out += ": ";
  append_escaped(out, message);
  bool first = true;
  const auto field = [&](std::string_view name, std::string_view value) {
    out += first ? " [" : " ";
    first = false;
    append_escaped(out, name);
    out += '=';
    append_value(out, value);
  };
  if (fields.request_id) field("request_id", *fields.request_id);
  if (fields.tenant) field("tenant", *fields.tenant);
  if (fields.model) field("model", *fields.model);
  if (fields.key_id) field("key_id", *fields.key_id);
  for (const auto& [name, value] : fields.extra) field(name, value);
  if (!first) out += ']';
  out += '\n';
  return out;
}

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long dev = std::strtoull(js, &end, 10);
  if (end == js || *end != ':' || errno != 0) return false;
  const char* ino_text = end + 1;
  const unsigned long long ino = std::strtoull(ino_text, &end, 10);
  if (end == ino_text || *end != '\0' || errno != 0) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void log(LogLevel level, std::string_view message, const LogFields& fields) {
  if (!log_enabled(level)) return;
  if (stderr_is_journal()) {
    send_to_journal(level, message, fields);
    return;
  }
  const std::string line = format_log_line(level, message, fields);
  sn::MutexLock lock(g_stderr_mu);
  write_all(STDERR_FILENO, line);
}

}  // namespace sn::daemon
