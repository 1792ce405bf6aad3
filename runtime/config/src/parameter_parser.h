#pragma once
// The `parameters:` section of a sweep config: W&B's distributions, their
// keys and inference rules, nested parameters, and the checks a grid needs.
#include <vector>

#include <yaml-cpp/yaml.h>

#include "xpscale/config/parameter.h"
#include "yaml_reader.h"

namespace xpscale {

// Parses the mapping under `parameters:`; nested groups are flattened to
// dotted names in file order. Problems go to the reader's diagnostics.
// A value listed twice in `values:` is a warning; for a grid (`grid`) the
// repeat is dropped (W&B's grid runs each point once), for draws it stays
// and weighs the value (W&B's random picks an index uniformly).
std::vector<ParameterSpec> parse_parameters(yaml::Reader& reader, const YAML::Node& node,
                                            bool grid);

// Reports parameters a grid cannot enumerate (continuous ones, probabilities,
// axes or products too large to count).
void check_grid(yaml::Reader& reader, const std::vector<ParameterSpec>& parameters,
                const SourceLocation& method_where);

}  // namespace xpscale
