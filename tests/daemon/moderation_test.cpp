// Sensitive-term moderation: input matching ignores ASCII case; the output filter holds back
// what may start a term, across pieces, releases the original bytes, and stops at a term.
#include <string>
#include <vector>

#include "supernode/daemon/moderation.h"

#include <CppUTest/TestHarness.h>

using sn::daemon::ContentFilter;
using sn::daemon::Moderation;

TEST_GROUP(Moderation){};

TEST(Moderation, TermsBySideAndInputMatchIgnoresCase) {
  Moderation m;
  m.set_terms({{"secret plan", "input", 0}, {"Ghost", "output", 0}, {"bomb", "both", 0}});
  const auto t = m.snapshot();
  LONGS_EQUAL(2, static_cast<long>(t->input.size()));
  LONGS_EQUAL(2, static_cast<long>(t->output.size()));
  CHECK_TRUE(t->input_hit("the SECRET Plan is"));
  CHECK_TRUE(t->input_hit("a Bomb"));
  CHECK_FALSE(t->input_hit("a ghost story"));
  CHECK_FALSE(t->input_hit("secret, plan"));
  // An older snapshot stays valid after a change.
  m.set_terms({});
  CHECK_TRUE(t->input_hit("bomb"));
  CHECK_FALSE(m.snapshot()->input_hit("bomb"));
}

TEST(Moderation, OutputFilterHoldsBackAndStopsAcrossPieces) {
  ContentFilter f({"ghost"});
  std::string out = f.push("A Gh");
  STRCMP_EQUAL("A ", out.c_str());  // "Gh" may start the term
  out += f.push("OS");
  STRCMP_EQUAL("A ", out.c_str());
  out += f.push("t town");
  STRCMP_EQUAL("A ", out.c_str());
  CHECK_TRUE(f.stopped());
  STRCMP_EQUAL("", f.push("more").c_str());
  STRCMP_EQUAL("", f.flush().c_str());

  ContentFilter g({"ghost"});
  std::string kept = g.push("The GHOul");
  CHECK_FALSE(g.stopped());
  kept += g.push(" ran");
  kept += g.flush();
  STRCMP_EQUAL("The GHOul ran", kept.c_str());  // original case and bytes, nothing lost
  ContentFilter none({});
  STRCMP_EQUAL("caf\xc3\xa9", none.push("caf\xc3\xa9").c_str());
}
