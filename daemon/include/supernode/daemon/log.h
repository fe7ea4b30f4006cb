// The daemon's one logging function. Under systemd, when stderr is the journal's stream
// (JOURNAL_STREAM names stderr's device and inode), each entry goes to the journal with
// sd_journal_send as structured fields (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=supernoded,
// SN_REQUEST_ID, SN_TENANT, SN_MODEL, SN_KEY_ID, and SN_<NAME> for each extra field), so
// `journalctl -u supernode SN_TENANT=acme` finds a tenant's lines; otherwise it is one
// line on stderr:
//
//   supernoded: warning: request cancelled [request_id=r-17 tenant=acme latency_ms=912]
//
//   log(LogLevel::kInfo, "model loaded", {.model = "llama-3.2-1b"});
//   log(LogLevel::kWarning, "quota exceeded", {.tenant = t, .key_id = k, .extra = {{"rpm", "60"}}});
//
// Fields carry identifiers only: the key id, never an API key; prompt text only where
// log_prompts_enabled() says the site asked for it ([log] prompts = true).
// Thread safety: every function may be called from any thread; the level and the
// prompts switch change at run time (SIGHUP re-reads the config).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sn::daemon {

enum class LogLevel : uint8_t { kDebug = 0, kInfo, kWarning, kError };

// "debug", "info", "warning", "error".
[[nodiscard]] const char* log_level_name(LogLevel level);
// The inverse of log_level_name; nullopt for anything else (no abbreviations).
[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view name);

// Context of one entry. Empty optionals are left out.
struct LogFields {
  std::optional<std::string> request_id;
  std::optional<std::string> tenant;
  std::optional<std::string> model;
  std::optional<std::string> key_id;  // the key's id, never the key
  // More fields, in order: name in lower snake_case (the journal gets SN_<NAME upper>).
  std::vector<std::pair<std::string, std::string>> extra;
};

// Entries below this level are dropped. Default kInfo.
void set_log_level(LogLevel level);
[[nodiscard]] LogLevel log_level();
// Whether an entry at `level` would be written (to skip building costly messages).
[[nodiscard]] bool log_enabled(LogLevel level);

// Whether prompt and completion text may be logged. Default false: never log prompts.
void set_log_prompts(bool enabled);
[[nodiscard]] bool log_prompts_enabled();

// Writes one entry (see the top of this file). Never fails: a lost entry is dropped.
void log(LogLevel level, std::string_view message, const LogFields& fields = {});

// The stderr form of an entry, newline included. Control characters in the message and the
// values are escaped (\n, \x1b, ...) so one entry is one line, and values with spaces,
// quotes or '=' are quoted, so a client-supplied value cannot forge a second entry.
[[nodiscard]] std::string format_log_line(LogLevel level, std::string_view message, const LogFields& fields);

// Whether stderr is connected to the journal right now: JOURNAL_STREAM is "DEV:INODE" of
// stderr (as systemd sets it for StandardError=journal). log() checks this per entry, so a
// redirected stderr is honoured.
[[nodiscard]] bool stderr_is_journal();

}  // namespace sn::daemon
