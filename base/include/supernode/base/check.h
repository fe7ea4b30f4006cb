// SN_CHECK(cond) << "context": for broken invariants (programming errors), never for bad
// input. Prints file, line, the condition and the streamed context to stderr, then aborts.
//
//   SN_CHECK(n % 32 == 0) << "row length " << n << " is not a multiple of the block";
//
// Thread safety: safe from any thread.
#pragma once

#include <sstream>

namespace sn::detail {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Lets the ternary in SN_CHECK have type void on both sides.
struct CheckVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace sn::detail

#define SN_CHECK(cond)               \
  (cond) ? (void)0                   \
         : ::sn::detail::CheckVoidify() & \
               ::sn::detail::CheckFailure(__FILE__, __LINE__, #cond).stream()
