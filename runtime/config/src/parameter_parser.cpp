// The `parameters:` section: distributions with W&B's meaning and checks.
#include "parameter_parser.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "xpscale/core/text.h"

namespace xpscale {
namespace {

using yaml::Entry;
using yaml::find;
using yaml::format_number;
using yaml::join_path;

const std::vector<std::string> kParameterKeys = {
    "value", "values", "probabilities", "distribution", "min", "max",
    "q",     "mu",     "sigma",         "a",            "b",   "parameters"};
// ln(DBL_MAX) is about 709.78: larger exponents overflow to infinity.
constexpr double kMaxExponent = 709.0;
// The largest standard normal quantile of a u in (0, 1) spaced 2^-53 from
// the ends is about 8.2.
constexpr double kMaxNormalQuantile = 8.3;
constexpr int kMaxNesting = 16;

// Which keys each distribution takes, beyond `distribution` itself.
std::vector<std::string> keys_for(Distribution d) {
  switch (d) {
    case Distribution::kConstant:
      return {"value"};
    case Distribution::kCategorical:
      return {"values", "probabilities"};
    case Distribution::kIntUniform:
    case Distribution::kUniform:
    case Distribution::kLogUniform:
    case Distribution::kLogUniformValues:
    case Distribution::kInvLogUniform:
    case Distribution::kInvLogUniformValues:
      return {"min", "max"};
    case Distribution::kQUniform:
    case Distribution::kQLogUniform:
    case Distribution::kQLogUniformValues:
      return {"min", "max", "q"};
    case Distribution::kNormal:
    case Distribution::kLogNormal:
      return {"mu", "sigma"};
    case Distribution::kQNormal:
    case Distribution::kQLogNormal:
      return {"mu", "sigma", "q"};
    case Distribution::kBeta:
      return {"a", "b"};
    case Distribution::kQBeta:
      return {"a", "b", "q"};
  }
  return {};
}

bool is_values_variant(Distribution d) {
  return d == Distribution::kLogUniformValues || d == Distribution::kQLogUniformValues ||
         d == Distribution::kInvLogUniformValues;
}

bool is_log_space(Distribution d) {
  return d == Distribution::kLogUniform || d == Distribution::kQLogUniform ||
         d == Distribution::kInvLogUniform;
}

class ParameterParser {
 public:
  ParameterParser(yaml::Reader& reader, bool grid) : reader_(reader), grid_(grid) {}

  std::vector<ParameterSpec> parse(const YAML::Node& node) {
    parse_parameters(node, "parameters", "", {}, 0);
    return std::move(parameters_);
  }

 private:
  void parse_parameters(const YAML::Node& node, const std::string& path, const std::string& prefix,
                        const std::vector<std::string>& parent_keys, int depth) {
    if (depth > kMaxNesting) {
      reader_.error(node, path,
                    "parameters nested deeper than " + std::to_string(kMaxNesting) + " levels");
      return;
    }
    for (auto& e : reader_.entries(node, path, {})) {
      const std::string p = join_path(path, e.key);
      const std::string name = join_path(prefix, e.key);
      std::vector<std::string> key_path = parent_keys;
      key_path.push_back(e.key);
      if (e.key.empty()) {
        reader_.error(e.key_node, p, "parameter names may not be empty");
        continue;
      }
      if (!e.value.IsMap()) {
        reader_.error(e.value, p,
                      "expected a mapping with 'value', 'values' or 'distribution', got " +
                          yaml::Reader::describe(e.value),
                      e.value.IsScalar() ? "for a constant, write '" + e.key +
                                               ": {value: " + e.value.Scalar() + "}'"
                                         : "");
        continue;
      }
      const YAML::Node& spec_node = e.value;  // const: operator[] must not insert
      // The last `parameters:` if it is given twice, as W&B reads it.
      if (const YAML::Node nested = yaml::last_value(spec_node, "parameters"); nested.IsDefined()) {
        auto keys = reader_.entry_map(e.value, p, kParameterKeys);
        for (const auto& [key, entry] : keys)
          if (key != "parameters")
            reader_.error(entry.key_node, join_path(p, key),
                          "'" + key + "' cannot stand beside nested 'parameters'");
        if (nested.IsMap() && nested.size() == 0)
          reader_.error(nested, join_path(p, "parameters"),
                        "expected at least one nested parameter");
        parse_parameters(nested, join_path(p, "parameters"), name, key_path, depth + 1);
        continue;
      }
      if (!names_.insert(name).second) {
        reader_.error(e.key_node, p, "parameter '" + name + "' is defined twice",
                      "a nested parameter's dotted name equals another parameter's name");
        continue;
      }
      if (auto spec = parse_parameter(e, p, name)) {
        spec->path = std::move(key_path);
        parameters_.push_back(std::move(*spec));
      }
    }
  }

  std::optional<ParameterSpec> parse_parameter(const Entry& e, const std::string& p,
                                               const std::string& name) {
    auto m = reader_.entry_map(e.value, p, kParameterKeys);
    ParameterSpec spec;
    spec.name = name;
    spec.where = reader_.location(e.key_node);
    const std::size_t errors_before = reader_.diagnostics().size();

    // The distribution: given, or inferred the way W&B infers it.
    bool needs_probabilities = false;
    if (auto d = find(m, "distribution")) {
      auto s = reader_.string(d->value, join_path(p, "distribution"));
      if (!s) return std::nullopt;
      // W&B's own name for categorical with probabilities (schema.json:
      // param_categorical_w_probabilities), which requires them.
      needs_probabilities = *s == "categorical_w_probabilities";
      auto dist = needs_probabilities ? Distribution::kCategorical : distribution_from_name(*s);
      if (!dist) {
        reader_.error(d->value, join_path(p, "distribution"),
                      "unknown distribution " + yaml::Reader::describe(d->value),
                      typo_note(*s, distribution_names(), "known distributions"));
        return std::nullopt;
      }
      spec.distribution = *dist;
    } else if (m.count("value")) {
      spec.distribution = Distribution::kConstant;
    } else if (m.count("values")) {
      spec.distribution = Distribution::kCategorical;
    } else if (m.count("min") && m.count("max")) {
      const bool ints = yaml::Reader::is_integer_scalar(m.at("min").value) &&
                        yaml::Reader::is_integer_scalar(m.at("max").value);
      spec.distribution = ints ? Distribution::kIntUniform : Distribution::kUniform;
    } else {
      reader_.error(e.value, p, "cannot tell the distribution",
                    "give 'values', 'value', both 'min' and 'max', or 'distribution'");
      return std::nullopt;
    }

    const std::string dist_name(distribution_name(spec.distribution));
    const auto takes = keys_for(spec.distribution);
    for (const auto& [key, entry] : m) {
      if (key == "distribution" || std::find(takes.begin(), takes.end(), key) != takes.end())
        continue;
      std::string note = "'" + dist_name + "' takes " + quoted_list(takes);
      if (key == "q" && spec.distribution != Distribution::kCategorical &&
          distribution_from_name("q_" + dist_name))
        note = "did you mean distribution 'q_" + dist_name + "'?";
      reader_.error(entry.key_node, join_path(p, key),
                    "'" + key + "' does not apply to distribution '" + dist_name + "'", note);
    }
    auto required = [&](const char* key) -> const Entry* {
      const Entry* entry = find(m, key);
      if (!entry)
        reader_.error(e.value, join_path(p, key),
                      "missing '" + std::string(key) + "' for distribution '" + dist_name + "'");
      return entry;
    };

    switch (spec.distribution) {
      case Distribution::kConstant:
        if (auto v = required("value"))
          if (auto j = reader_.json(v->value, join_path(p, "value"))) spec.values.push_back(*j);
        break;
      case Distribution::kCategorical:
        if (auto v = required("values")) parse_values(*v, join_path(p, "values"), spec);
        if (auto pr = needs_probabilities ? required("probabilities") : find(m, "probabilities"))
          parse_probabilities(*pr, join_path(p, "probabilities"), spec);
        break;
      default:
        if (takes.front() == "min")
          parse_bounds(p, spec, required);
        else if (takes.front() == "a")
          parse_beta(m, p, spec);
        else
          parse_normal(m, p, spec);
        if (std::find(takes.begin(), takes.end(), "q") != takes.end()) parse_q(m, p, spec);
        break;
    }
    if (reader_.diagnostics().size() != errors_before) return std::nullopt;
    return spec;
  }

  void parse_values(const Entry& v, const std::string& path, ParameterSpec& spec) {
    if (!v.value.IsSequence()) {
      reader_.error(v.value, path,
                    "expected a list of values, got " + yaml::Reader::describe(v.value));
      return;
    }
    if (v.value.size() == 0) {
      reader_.error(v.value, path, "expected at least one value, got an empty list");
      return;
    }
    // An ordered map, not a scan of spec.values: a generated list of
    // 500,000 values must not take n^2 comparisons. json's < orders numbers
    // by value across types, as its == compares them (1 and 1.0 are twins,
    // as they are to W&B's grid, which hashes 1.0 as 1).
    std::map<nlohmann::json, std::size_t> first_index;
    std::size_t i = 0, repeats = 0;
    SourceLocation first_repeat;
    std::string first_repeat_text;
    std::size_t first_repeat_at = 0, first_repeat_of = 0;
    for (const auto& item : v.value) {
      const std::size_t index = i++;
      auto j = reader_.json(item, path + "[" + std::to_string(index) + "]");
      if (!j) continue;
      if (auto [it, fresh] = first_index.emplace(*j, index); !fresh) {
        if (repeats++ == 0) {
          first_repeat = reader_.location(item);
          first_repeat_text = j->dump();
          first_repeat_at = index;
          first_repeat_of = it->second;
        }
        // A grid runs each distinct point once (W&B's grid_search skips a
        // combination it has already suggested); draws keep the repeats,
        // which weigh the value (W&B's random picks an index uniformly).
        if (grid_) continue;
      }
      spec.values.push_back(std::move(*j));
    }
    if (repeats == 0) return;
    const std::string where = path + "[" + std::to_string(first_repeat_at) + "]";
    std::string message = "value " + first_repeat_text + " is listed twice (first at [" +
                          std::to_string(first_repeat_of) + "])";
    if (repeats > 1)
      message += ", and " + std::to_string(repeats - 1) + " more repeated value" +
                 (repeats > 2 ? "s" : "");
    message += grid_ ? "; the grid runs each value once, as W&B's grid does"
                     : "; draws pick each listed entry alike, so a repeated value is drawn "
                       "more often, as W&B's do";
    reader_.warn(first_repeat, where, message);
  }

  void parse_probabilities(const Entry& pr, const std::string& path, ParameterSpec& spec) {
    if (!pr.value.IsSequence()) {
      reader_.error(pr.value, path,
                    "expected a list of probabilities, got " + yaml::Reader::describe(pr.value));
      return;
    }
    double sum = 0;
    std::size_t i = 0;
    bool ok = true;
    for (const auto& item : pr.value) {
      const std::string p = path + "[" + std::to_string(i++) + "]";
      auto x = reader_.number(item, p);
      if (!x) {
        ok = false;
        continue;
      }
      if (*x < 0 || *x > 1) {
        reader_.error(item, p, "expected a probability in [0, 1], got " + format_number(*x));
        ok = false;
      }
      spec.probabilities.push_back(*x);
      sum += *x;
    }
    if (!ok || spec.values.empty()) return;
    if (spec.probabilities.size() != spec.values.size()) {
      reader_.error(pr.value, path,
                    "expected " + std::to_string(spec.values.size()) +
                        " probabilities (one per value), got " +
                        std::to_string(spec.probabilities.size()));
    } else if (std::abs(sum - 1.0) > 1e-6) {
      reader_.error(pr.value, path, "probabilities sum to " + format_number(sum) + ", expected 1");
    }
  }

  template <typename Required>
  void parse_bounds(const std::string& p, ParameterSpec& spec, Required& required) {
    const Entry* lo = required("min");
    const Entry* hi = required("max");
    if (!lo || !hi) return;
    std::optional<double> min, max;
    if (spec.distribution == Distribution::kIntUniform) {
      // Draws are computed in doubles, which hold integers exactly up to 2^53.
      constexpr std::int64_t kExact = std::int64_t{1} << 53;
      for (const Entry* bound : {lo, hi}) {
        auto v = reader_.integer(bound->value, join_path(p, bound->key));
        if (v && (*v > kExact || *v < -kExact)) {
          reader_.error(bound->value, join_path(p, bound->key),
                        "expected an integer within +-2^53, got " + std::to_string(*v));
          v.reset();
        }
        if (v) (bound == lo ? min : max) = static_cast<double>(*v);
      }
    } else {
      min = reader_.number(lo->value, join_path(p, "min"));
      max = reader_.number(hi->value, join_path(p, "max"));
      spec.bounds_integer =
          yaml::Reader::is_integer_scalar(lo->value) && yaml::Reader::is_integer_scalar(hi->value);
    }
    if (!min || !max) return;
    spec.min = *min;
    spec.max = *max;
    if (*min >= *max) {
      reader_.error(hi->value, join_path(p, "max"),
                    "max (" + format_number(*max) + ") must be greater than min (" +
                        format_number(*min) + ")");
      return;
    }
    if (is_values_variant(spec.distribution)) {
      if (*min <= 0)
        reader_.error(lo->value, join_path(p, "min"),
                      "expected min > 0 for '" + std::string(distribution_name(spec.distribution)) +
                          "' (its bounds are values, whose log is taken), got " +
                          format_number(*min),
                      "for bounds in log space use '" +
                          std::string(distribution_name(spec.distribution))
                              .substr(0, distribution_name(spec.distribution).size() - 7) +
                          "'");
    } else if (is_log_space(spec.distribution)) {
      for (const Entry* b : {lo, hi}) {
        const double x = b == lo ? *min : *max;
        if (std::abs(x) > kMaxExponent)
          reader_.error(b->value, join_path(p, b->key),
                        "bound " + format_number(x) + " is in natural-log space and e^" +
                            format_number(x) + " overflows a double",
                        "did you mean '" + std::string(distribution_name(spec.distribution)) +
                            "_values' (bounds as values)?");
      }
    }
  }

  void parse_normal(const yaml::EntryMap& m, const std::string& p, ParameterSpec& spec) {
    if (auto mu = find(m, "mu"))
      if (auto x = reader_.number(mu->value, join_path(p, "mu"))) spec.mu = *x;
    if (auto sg = find(m, "sigma")) {
      if (auto x = reader_.number(sg->value, join_path(p, "sigma"))) {
        if (*x <= 0)
          reader_.error(sg->value, join_path(p, "sigma"),
                        "expected sigma > 0, got " + format_number(*x));
        spec.sigma = *x;
      }
    }
    const bool log = spec.distribution == Distribution::kLogNormal ||
                     spec.distribution == Distribution::kQLogNormal;
    if (log && spec.sigma > 0 && std::abs(spec.mu) + kMaxNormalQuantile * spec.sigma > kMaxExponent)
      reader_.error(m.count("sigma") ? m.at("sigma").value : m.at("mu").value, p,
                    "mu and sigma are in natural-log space; e^(mu + 8.3 sigma) overflows a double");
  }

  // W&B's beta: a, b >= 0, default 1. Boost's beta needs them > 0 and finite.
  void parse_beta(const yaml::EntryMap& m, const std::string& p, ParameterSpec& spec) {
    for (const char* key : {"a", "b"}) {
      auto v = find(m, key);
      if (!v) continue;
      auto x = reader_.number(v->value, join_path(p, key));
      if (!x) continue;
      if (!(*x > 0) || !std::isfinite(*x)) {
        reader_.error(v->value, join_path(p, key),
                      "expected a finite number > 0, got " + format_number(*x));
        continue;
      }
      (key[0] == 'a' ? spec.a : spec.b) = *x;
    }
  }

  void parse_q(const yaml::EntryMap& m, const std::string& p, ParameterSpec& spec) {
    auto qe = find(m, "q");
    if (!qe) {
      // W&B's default q is 1.0 (schema.json), a float: its values are floats.
      spec.q = 1;
      spec.q_is_integer = false;
      return;
    }
    auto q = reader_.number(qe->value, join_path(p, "q"));
    if (!q) return;
    if (*q <= 0) {
      reader_.error(qe->value, join_path(p, "q"), "expected q > 0, got " + format_number(*q));
      return;
    }
    spec.q = *q;
    spec.q_is_integer = yaml::Reader::is_integer_scalar(qe->value);
  }

  yaml::Reader& reader_;
  bool grid_ = false;
  std::vector<ParameterSpec> parameters_;
  std::set<std::string> names_;
};

}  // namespace

std::vector<ParameterSpec> parse_parameters(yaml::Reader& reader, const YAML::Node& node,
                                            bool grid) {
  return ParameterParser(reader, grid).parse(node);
}

void check_grid(yaml::Reader& reader, const std::vector<ParameterSpec>& parameters,
                const SourceLocation& method_where) {
  long double points = 1;
  for (const auto& spec : parameters) {
    if (!spec.is_discrete()) {
      reader.error(spec.where, "parameters." + spec.name,
                   "distribution '" + std::string(distribution_name(spec.distribution)) +
                       "' is continuous; method 'grid' needs 'values', 'value', 'int_uniform' "
                       "or 'q_uniform'",
                   "use method 'random' or 'sobol' to sample continuous parameters");
      continue;
    }
    if (!spec.probabilities.empty())
      reader.error(spec.where, "parameters." + spec.name + ".probabilities",
                   "'probabilities' has no meaning in a grid, which runs every value once");
    const long double axis = spec.grid_size();
    if (axis > ParameterSpec::kMaxGridValues) {
      reader.error(spec.where, "parameters." + spec.name,
                   "this grid axis has " + format_number(static_cast<double>(axis)) +
                       " values; at most 1000000 are allowed");
    }
    points *= std::max<long double>(axis, 1);
  }
  if (points > 1e15 && reader.ok())
    reader.error(method_where, "method",
                 "the grid has " + format_number(static_cast<double>(points)) +
                     " points; at most 1e15 can be enumerated",
                 "use method 'random' or 'sobol' with 'trials'");
}

}  // namespace xpscale
