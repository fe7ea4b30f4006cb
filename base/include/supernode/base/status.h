// Status and Result<T>: how every room reports an expected failure (bad input, missing
// file, unsupported feature) without exceptions. Shaped after LevelDB's status.h: cheap
// on success, named constructors that take a context (what was being done, which file)
// and a detail (what exactly is wrong), and a message a user can act on.
//
//   Result<Model> m = Model::load(path);
//   if (!m.ok()) { std::cerr << m.status().to_string() << "\n"; return 1; }
//   use(*m);
//
// Thread safety: values; const methods are safe concurrently, others need external
// synchronization.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sn {

class [[nodiscard]] Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kInvalidArgument,
    kNotFound,
    kNotSupported,
    kCorruption,
    kIoError,
    kResourceExhausted,
    kInternal,
    kPermissionDenied,     // the caller may not do this (a wrong setup token, a role)
    kFailedPrecondition,   // not in this state (set up already, the last admin, loaded)
  };

  Status() = default;

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kInvalidArgument, context, detail);
  }
  static Status not_found(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kNotFound, context, detail);
  }
  static Status not_supported(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kNotSupported, context, detail);
  }
  static Status corruption(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kCorruption, context, detail);
  }
  static Status io_error(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kIoError, context, detail);
  }
  static Status resource_exhausted(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kResourceExhausted, context, detail);
  }
  static Status internal(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kInternal, context, detail);
  }
  static Status permission_denied(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kPermissionDenied, context, detail);
  }
  static Status failed_precondition(std::string_view context, std::string_view detail = {}) {
    return Status(Code::kFailedPrecondition, context, detail);
  }

  [[nodiscard]] bool is_ok() const { return code_ == Code::kOk; }
  [[nodiscard]] Code code() const { return code_; }
  // "context: detail" (or just the context when there is no detail).
  [[nodiscard]] const std::string& message() const { return message_; }
  // The code's name followed by the message, e.g. "corruption: model.gguf: ...".
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] static const char* code_name(Code code);

  // Returns a copy whose message is prefixed with `context: `.
  [[nodiscard]] Status with_context(std::string_view context) const;

 private:
  Status(Code code, std::string_view context, std::string_view detail);

  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const { return value_.has_value(); }
  [[nodiscard]] const Status& status() const { return status_; }

  // REQUIRES: ok().
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace sn

// Returns from the enclosing function when `expr` (a Status) is not ok.
#define SN_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::sn::Status sn_status_ = (expr);       \
    if (!sn_status_.is_ok()) return sn_status_; \
  } while (0)
