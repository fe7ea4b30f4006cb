// Status formatting. See status.h.
#include "supernode/base/status.h"

namespace sn {

Status::Status(Code code, std::string_view context, std::string_view detail) : code_(code) {
  message_.assign(context);
  if (!detail.empty()) {
    if (!message_.empty()) message_ += ": ";
    message_ += detail;
  }
}

const char* Status::code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kNotSupported: return "not supported";
    case Code::kCorruption: return "corruption";
    case Code::kIoError: return "I/O error";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kInternal: return "internal error";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kFailedPrecondition: return "failed precondition";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  Status s = *this;
  s.message_ = std::string(context) + ": " + message_;
  return s;
}

}  // namespace sn
