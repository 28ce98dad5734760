// The management socket vuswitchctl talks to: one JSON request line, one JSON reply line.
//
// The protocol (README, "Control socket protocol"): a request is a JSON object with
// "cmd" and the command's arguments; every reply carries "version" (kProtocolVersion)
// and either the command's fields or {"error": {"code": CODE, "message": TEXT}}, CODE
// one of the stable ErrorCode names. Commands are rows of one table (management.cc,
// kVerbs): a new command is a row and a member function.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/control_connections.h"
#include "control/event_loop.h"
#include "vusw/port.h"
#include "vusw/result.h"

namespace vusw {

struct Config;
struct PortSpec;
struct ReloadReport;
enum class PortKind;
class Fdb;
class Pmd;
class PortState;
class Scheduler;

// Bumped when a reply field changes meaning or goes away (new fields and commands do not).
inline constexpr unsigned kProtocolVersion = 1;

// Stable error codes of the control protocol.
enum class ErrorCode { bad_request, unknown_command, bad_argument, no_such_port, failed, port_exists, busy };
std::string_view error_code_name(ErrorCode code);

// Port state, counters and protocol statistics as JSON (shared with tests and the CLI);
// the counters as they are (never reset: `clear_stats` only moves the views' baseline).
nlohmann::json describe_ports(const std::vector<Port*>& ports);
// The effective configuration as `show_config` reports it.
nlohmann::json describe_config(const Config& config);
// Counters of `now` minus those of `base` (same shape; list items matched by their
// name, PMD or queue index): the views after `clear_stats`. Gauges (MTU, sizes, ring
// positions, loads) are left as they are.
void subtract_baseline(nlohmann::json& now, const nlohmann::json& base);

// What the management socket asks of whoever owns the ports (the Daemon).
struct PortControl {
    std::function<Result<Port*>(PortKind, const PortSpec&)> add;
    std::function<Status(const std::string& name)> remove;
    std::function<Result<ReloadReport>()> reload;
    // A tunnel over `underlay` (a NIC opened for it), or without one over the --nic of the
    // configuration that its underlay= names.
    std::function<Result<Port*>(const PortSpec& tunnel, const std::optional<PortSpec>& underlay)> add_tunnel = {};
};

class Management {
public:
    // `state`: the ports added at run time; add_port records each, del_port forgets it.
    Management(std::string path, EventLoop& loop, const std::vector<Port*>& ports, const Fdb& fdb,
               const std::vector<Pmd*>& pmds, Scheduler& scheduler, const Config& config, PortControl control,
               PortState& state);
    ~Management();
    Status start();

    // One request line, one reply line (with its newline), as the socket serves them: JSON
    // parsed, handled and dumped. Never throws; bytes that are not UTF-8 are answered as
    // bad_request, or replaced by U+FFFD where they come from elsewhere (a socket path).
    std::string answer(std::string_view line);
    // One request, one reply (with "version").
    nlohmann::json handle(const nlohmann::json& request);
    // The commands, for the unknown_command error and vuswitchctl's completion.
    static std::vector<std::string_view> commands();

    // A command's reply: its fields, or an error.
    struct Reply {
        nlohmann::json body;
        static Reply error(ErrorCode code, std::string message);
    };
    struct Verb {
        std::string_view cmd;
        Reply (Management::*run)(const nlohmann::json& request);
    };

    // The commands (rows of kVerbs).
    Reply show_ports(const nlohmann::json& request);
    Reply show_port(const nlohmann::json& request);
    Reply show_fdb(const nlohmann::json& request);
    Reply show_pmd(const nlohmann::json& request);
    Reply show_config(const nlohmann::json& request);
    Reply rebalance(const nlohmann::json& request);
    Reply pin(const nlohmann::json& request);
    Reply clear_stats(const nlohmann::json& request);
    Reply set_log_level(const nlohmann::json& request);
    Reply version(const nlohmann::json& request);
    Reply add_port(const nlohmann::json& request);
    Reply add_tunnel(const nlohmann::json& request);
    Reply del_port(const nlohmann::json& request);
    Reply reload(const nlohmann::json& request);

private:
    std::string refuse(ControlConnections::Drop why, const ControlConnections::Limits& limits) const;

    nlohmann::json pmd_counters() const;
    // describe_ports() with each port's "origin": "runtime" (added with add_port, kept in
    // the state file) or "config" (the command line, its --config file, a reload).
    nlohmann::json ports_json(const std::vector<Port*>& ports) const;
    // add_port's reply for `port`, made by `request`, which is recorded for the next start.
    Reply added(Port& port, const nlohmann::json& request);
    nlohmann::json queue_details(const Port& port, const nlohmann::json& queues) const;
    static Result<std::optional<PortSpec>> underlay_spec(const nlohmann::json& request);

    std::string path_;
    EventLoop& loop_;
    const std::vector<Port*>& ports_;
    const Fdb& fdb_;
    const std::vector<Pmd*>& pmds_;
    Scheduler& scheduler_;
    const Config& config_;
    PortControl control_;
    PortState& state_;
    UniqueFd listen_;
    std::unique_ptr<ControlConnections> connections_;  // of listen_
    // clear_stats: the counters as they were then (describe_ports, pmd_counters).
    nlohmann::json base_ports_ = nlohmann::json::array();
    nlohmann::json base_pmds_ = nlohmann::json::array();
    std::string cleared_at_;  // UTC, ISO 8601; empty: never cleared
};

// An internal error (result.h reasons are internal labels) as a protocol error.
Management::Reply error_reply(const Error& e);

}  // namespace vusw
