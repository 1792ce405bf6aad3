#include <gtest/gtest.h>

#include "xpscale/config/sweep_config.h"

namespace xpscale {
namespace {

TEST(Duration, Forms) {
  EXPECT_EQ(parse_duration("90"), 90);
  EXPECT_EQ(parse_duration("90s"), 90);
  EXPECT_EQ(parse_duration("15m"), 900);
  EXPECT_EQ(parse_duration("2h"), 7200);
  EXPECT_EQ(parse_duration("1d"), 86400);
  EXPECT_EQ(parse_duration("01:30:00"), 5400);
  EXPECT_EQ(parse_duration("90:00"), 5400);
  EXPECT_EQ(parse_duration("1-02:00:00"), 93600);
  EXPECT_EQ(parse_duration("0.5h"), 1800);
}

TEST(Duration, Malformed) {
  for (const char* s :
       {"", "soon", "-5", "0", "1:60:00", "1::2", "h", "1x", "1-2", "1:2:3:4", "nan", "infs"})
    EXPECT_FALSE(parse_duration(s)) << s;
}

}  // namespace
}  // namespace xpscale
