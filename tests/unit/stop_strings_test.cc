#include "server/engine/stop_strings.h"

#include "gtest/gtest.h"

namespace hr {
namespace {

TEST(StopStringsTest, HoldsBackPossiblePrefixAndStopsOnMatch) {
  StopStringMatcher m({"The end", "\n\n"});
  EXPECT_EQ(m.Push("Once upon a time. Th"), "Once upon a time. ");
  EXPECT_EQ(m.Push("ey left. The e"), "They left. ");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("nd! more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("ignored"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringsTest, ReleasesFalseStartsAndFlushesTail) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Push("ST"), "");
  EXPECT_EQ(m.Push("ART S"), "START ");
  EXPECT_EQ(m.Flush(), "S");
}

TEST(StopStringsTest, EarliestMatchWinsAndEmptyStopsIgnored) {
  StopStringMatcher m({"", "cd", "b"});
  EXPECT_EQ(m.Push("abcd"), "a");
  EXPECT_TRUE(m.stopped());
  StopStringMatcher none({});
  EXPECT_EQ(none.Push("abc"), "abc");
}

}  // namespace
}  // namespace hr
