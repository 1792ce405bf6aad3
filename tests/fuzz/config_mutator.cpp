// A seeded generator of malformed YAML: replays the committed corpus, then
// mutates it with YAML-aware edits for a bounded time. Runs with any
// compiler (it is the fuzz test of the plain gcc build); libFuzzer adds
// coverage guidance where clang is available.
//
//   config_mutator CORPUS_DIR SECONDS [SEED]
//
// Prints the inputs it ran and how many loaded; exits 1 on an escaped
// exception, printing the input that caused it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config_harness.h"
#include "xpscale/search/rng.h"

namespace {

// Fragments that stress the loader: structure, aliases, tags, odd numbers,
// macros, W&B and xpscale keys in the wrong places.
const std::vector<std::string> kFragments = {"{",
                                             "}",
                                             "[",
                                             "]",
                                             ":",
                                             ": ",
                                             "- ",
                                             "\n",
                                             "\n  ",
                                             "\t",
                                             "'",
                                             "\"",
                                             "&a ",
                                             "*a",
                                             "!!str ",
                                             "!!int ",
                                             "!custom ",
                                             "? ",
                                             "|\n  ",
                                             ">\n  ",
                                             "#",
                                             "---\n",
                                             "...\n",
                                             "~",
                                             "null",
                                             "true",
                                             "-1",
                                             "0",
                                             "1e309",
                                             "-.inf",
                                             ".nan",
                                             "0x1F",
                                             "99999999999999999999",
                                             "1.5",
                                             "-0.0",
                                             "${args}",
                                             "${program}",
                                             "${nope}",
                                             "${",
                                             "parameters:\n  p: ",
                                             "values: []",
                                             "distribution: ",
                                             "log_uniform",
                                             "q_uniform",
                                             "int_uniform",
                                             "normal",
                                             "min: ",
                                             "max: ",
                                             "q: ",
                                             "probabilities: [0.5, 0.5]",
                                             "method: grid\n",
                                             "method: sobol\n",
                                             "trials: ",
                                             "run_cap: ",
                                             "seed: ",
                                             "early_terminate: {type: hyperband, min_iter: 3}\n",
                                             "scheduler: {type: pbt, resource: epoch}\n",
                                             "data: {train: {pattern: s3://b/{0..3}.tar}}\n",
                                             "resources: {ranks_per_trial: 2, time_limit: 1:00}\n",
                                             "parameters:\n",
                                             "\xff\xfe",
                                             "\0",
                                             "{a: {b: {c: {d: [[[[",
                                             "value: &x [1, 2]\n  y: {value: *x}\n"};

std::string mutate(const std::string& input, xpscale::Rng& rng) {
  std::string s = input;
  const int edits = 1 + static_cast<int>(rng.next_below(4));
  for (int e = 0; e < edits; ++e) {
    const std::size_t pos = s.empty() ? 0 : rng.next_below(s.size() + 1);
    switch (rng.next_below(6)) {
      case 0:  // insert a fragment
        s.insert(pos, kFragments[rng.next_below(kFragments.size())]);
        break;
      case 1:  // delete a range
        if (!s.empty()) s.erase(pos, 1 + rng.next_below(16));
        break;
      case 2:  // flip a byte
        if (!s.empty()) s[pos % s.size()] = static_cast<char>(rng.next_below(256));
        break;
      case 3: {  // duplicate a line
        const std::size_t start = s.rfind('\n', pos == 0 ? 0 : pos - 1);
        const std::size_t end = s.find('\n', pos);
        const std::size_t a = start == std::string::npos ? 0 : start + 1;
        const std::size_t b = end == std::string::npos ? s.size() : end;
        if (a <= b) s.insert(a, s.substr(a, b - a) + "\n");
        break;
      }
      case 4:  // change the indentation of a line
        s.insert(pos, std::string(rng.next_below(5), ' '));
        break;
      default:  // replace a digit run with an extreme number
        s.insert(pos, std::to_string(static_cast<std::int64_t>(rng.next_bits())));
        break;
    }
  }
  if (s.size() > 1 << 16) s.resize(1 << 16);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: config_mutator CORPUS_DIR SECONDS [SEED]\n";
    return 2;
  }
  const std::filesystem::path corpus_dir = argv[1];
  const double seconds = std::atof(argv[2]);
  const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;

  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(corpus_dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    corpus.push_back(buffer.str());
  }
  if (corpus.empty()) {
    std::cerr << "config_mutator: no inputs in " << corpus_dir << '\n';
    return 2;
  }

  std::size_t runs = 0, valid = 0;
  std::string current;
  try {
    for (const auto& text : corpus) {
      current = text;
      valid += xpscale::fuzz::check_config_text(text);
      ++runs;
    }
    xpscale::Rng rng(seed, 0xf022);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      current = mutate(corpus[rng.next_below(corpus.size())], rng);
      valid += xpscale::fuzz::check_config_text(current);
      ++runs;
    }
  } catch (const std::exception& e) {
    std::cerr << "config_mutator: an exception escaped the loader: " << e.what() << "\ninput:\n"
              << current << "\n";
    return 1;
  }
  std::cout << "config_mutator: " << runs << " inputs (" << corpus.size() << " from the corpus), "
            << valid << " loaded, none escaped or crashed\n";
  return 0;
}
