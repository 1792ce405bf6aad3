// Canonical configs: comments, quoting, key order and layout are not the
// sweep; any value is, and the first difference is named by its key path.
#include <gtest/gtest.h>

#include "xpscale/config/canonical_config.h"
#include "xpscale/config/diagnostics.h"
#include "xpscale/sharding/digest.h"

namespace xpscale {
namespace {

constexpr const char* kConfig = R"(# a sweep
method: random
trials: 8
parameters:
  lr: {min: 0.1, max: 1.0}   # learning rate
  opt:
    values: [adam, sgd]
)";

std::string hash(const std::string& text) { return canonical_config_hash(text, "sweep.yaml"); }

TEST(CanonicalConfig, CommentsQuotingOrderAndLayoutAreTheSameSweep) {
  const std::string same = R"(parameters:
  opt:
    values:
      - "adam"
      - 'sgd'
  lr:
    max: 1.0
    min: 0.1
trials: 8      # more comments
method: "random"
)";
  EXPECT_EQ(hash(kConfig), hash(same));
  EXPECT_EQ(canonical_config(kConfig, "a.yaml"), canonical_config(same, "b.yaml"));
  // Aliases are expanded, so they are layout too.
  EXPECT_EQ(hash("a: &x [1, 2]\nb: *x\n"), hash("a: [1, 2]\nb: [1, 2]\n"));
}

TEST(CanonicalConfig, AnyValueIsADifferentSweep) {
  const std::string base = kConfig;
  auto changed = [&](const std::string& from, const std::string& to) {
    std::string t = base;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  EXPECT_NE(hash(base), hash(changed("max: 1.0", "max: 2.0")));
  EXPECT_NE(hash(base), hash(changed("max: 1.0", "max: 1")));          // a float is not an integer
  EXPECT_NE(hash(base), hash(changed("trials: 8", "trials: \"8\"")));  // nor a string
  EXPECT_NE(hash(base), hash(changed("[adam, sgd]", "[sgd, adam]")));  // lists keep their order
  EXPECT_NE(hash("a: null\n"), hash("a: \"null\"\n"));
  EXPECT_NE(hash("a: .inf\n"), hash("a: -.inf\n"));
}

TEST(CanonicalConfig, FirstDifferenceNamesTheKeyPath) {
  auto diff = [](const std::string& a, const std::string& b) {
    return first_config_difference(canonical_config(a, "a"), canonical_config(b, "b"));
  };
  EXPECT_EQ(diff(kConfig, kConfig), "");
  EXPECT_EQ(
      diff("parameters: {lr: {min: 0, max: 0.1}}\n", "parameters: {lr: {min: 0, max: 0.2}}\n"),
      "parameters.lr.max: 0.1 -> 0.2");
  EXPECT_EQ(diff("a: 1\nb: {c: x}\n", "a: 1\nb: {c: y}\n"), "b.c: \"x\" -> \"y\"");
  EXPECT_EQ(diff("a: 1\n", "a: 1\nseed: 3\n"), "seed: added 3");
  EXPECT_EQ(diff("a: 1\nseed: 3\n", "a: 1\n"), "seed: removed (was 3)");
  EXPECT_EQ(diff("v: [1, 2]\n", "v: [1, 3]\n"), "v[1]: 2 -> 3");
  EXPECT_EQ(diff("v: [1, 2]\n", "v: [1, 2, 4]\n"), "v: 2 values -> 3 values");
  EXPECT_EQ(diff("v: [1, 2]\n", "v: {a: 1}\n"), "v: [1,2] -> {\"a\":1}");
  // The first in key order, whatever the order in the file.
  EXPECT_EQ(diff("z: 1\na: 1\n", "z: 2\na: 2\n"), "a: 1 -> 2");
}

TEST(CanonicalConfig, StoresRecogniseTheirSweep) {
  const std::string edited = std::string("# edited comment only\n") + kConfig;
  // A store written with canonical hashes.
  auto m = match_stored_config(hash(kConfig), kConfig, edited, "sweep.yaml");
  EXPECT_TRUE(m.same);
  EXPECT_EQ(m.hash, hash(kConfig));
  // A store written before them holds sha256 of the text: unchanged text
  // matches, and so does text whose canonical form is unchanged.
  EXPECT_TRUE(match_stored_config(sha256_hex(kConfig), kConfig, kConfig, "sweep.yaml").same);
  EXPECT_TRUE(match_stored_config(sha256_hex(kConfig), kConfig, edited, "sweep.yaml").same);
  // A real change is not the same sweep, and says what changed.
  std::string changed = kConfig;
  changed.replace(changed.find("max: 1.0"), 8, "max: 0.5");
  m = match_stored_config(hash(kConfig), kConfig, changed, "sweep.yaml");
  EXPECT_FALSE(m.same);
  EXPECT_EQ(m.difference, "parameters.lr.max: 1.0 -> 0.5");
  m = match_stored_config(sha256_hex(kConfig), kConfig, changed, "sweep.yaml");
  EXPECT_FALSE(m.same);
  // No store yet: only the hash.
  m = match_stored_config("", "", kConfig, "sweep.yaml");
  EXPECT_FALSE(m.same);
  EXPECT_EQ(m.hash, hash(kConfig));
  // A stored text that no longer parses is a difference that says so.
  m = match_stored_config("0123", "a: [", kConfig, "sweep.yaml");
  EXPECT_FALSE(m.same);
  EXPECT_NE(m.difference.find("the stored config cannot be compared"), std::string::npos);
}

TEST(CanonicalConfig, AKeyGivenTwiceKeepsItsLastValueAsTheReaderDoes) {
  EXPECT_EQ(hash("a: 1\na: 2\n"), hash("a: 2\n"));
  EXPECT_NE(hash("a: 1\na: 2\n"), hash("a: 1\n"));
  EXPECT_EQ(hash("p: {x: 1, x: 3}\n"), hash("p: {x: 3}\n"));
}

TEST(CanonicalConfig, MalformedTextIsAConfigError) {
  EXPECT_THROW(hash("a: [\n"), ConfigError);
  EXPECT_THROW(hash("? [1, 2]\n: x\n"), ConfigError);
  EXPECT_THROW(hash("a: 1\n---\nb: 2\n"), ConfigError);
}

}  // namespace
}  // namespace xpscale
