// The client side of the management socket (management.h): one JSON request line, one
// JSON reply line. vuswitchctl and vuswitch-cni both speak to vuswitchd through it.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "vusw/result.h"

namespace vusw {

// Why a request got no answer (Error::reason; compare the text, not the pointer: a
// literal's address may differ between libraries), for callers that react differently
// (vuswitchctl: what to check; a busy daemon means "retry").
namespace control_client_error {
inline constexpr const char* not_running = "not_running";  // no socket file, or nobody listening
inline constexpr const char* no_permission = "no_permission";
inline constexpr const char* no_answer = "no_answer";  // connected, but no (valid) reply line
}  // namespace control_client_error

// Sends `request` (one line, without its newline) to the control socket at `path` and
// returns the reply line, without its newline. The error detail names the path and
// what failed; callers add what the user should do (their option or config key).
Result<std::string> ask(const std::string& path, const std::string& request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The reply line as a JSON object (reason no_answer when it is not one).
Result<nlohmann::json> parse_reply(const std::string& path, const std::string& line);

}  // namespace vusw
