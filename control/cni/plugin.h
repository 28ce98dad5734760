// vuswitch-cni's commands: each does its work through vuswitchd's control socket and
// returns the document to print on stdout (a result, or nothing for DEL).
#pragma once

#include <expected>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/cni/spec.h"

namespace vusw::cni {

// Runs env.command with the network configuration `config` (stdin). A null json is
// success with nothing to print (DEL).
std::expected<nlohmann::json, CniError> run(const Env& env, std::string_view config);

}  // namespace vusw::cni
