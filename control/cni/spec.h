// vuswitch-cni's view of the CNI 1.0 specification: the environment kubelet (or any CNI
// runtime) sets, the network configuration on stdin with vuswitch's keys, the port name
// and socket path derived from them, and the result and error documents printed on stdout.
//
// Everything here is pure (no daemon, no files): the unit tests cover it; plugin.cc does
// the work through vuswitchd's control socket. Spec: https://www.cni.dev/docs/spec/ (1.0.0).
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace vusw::cni {

inline constexpr std::string_view kCniVersion = "1.0.0";  // the only version we speak
inline constexpr std::string_view kPluginType = "vuswitch-cni";

// CNI error codes (spec 1.0, "Error"): 1..99 are the spec's, 100+ this plugin's.
enum class Code : unsigned {
    incompatible_version = 1,
    invalid_env = 4,
    io_failure = 5,
    decoding_failure = 6,
    invalid_config = 7,
    try_again_later = 11,
    daemon_refused = 100,  // vuswitchd answered add_port/del_port with an error
    port_missing = 101,    // CHECK: the pod's port or its socket is gone
    port_conflict = 102,   // ADD: the port name belongs to another socket
};

// A CNI error: printed as {"cniVersion","code","msg","details"}, exit status 1.
struct CniError {
    Code code;
    std::string msg;      // what went wrong and what to do
    std::string details;  // e.g. the daemon's own message
};

inline std::unexpected<CniError> cni_error(Code code, std::string msg, std::string details = {})
{
    return std::unexpected(CniError{code, std::move(msg), std::move(details)});
}

enum class Command { add, del, check, version };

// The CNI_* environment. CNI_NETNS may be empty on DEL (the sandbox is gone).
struct Env {
    Command command = Command::version;
    std::string container_id;  // CNI_CONTAINERID
    std::string netns;         // CNI_NETNS
    std::string ifname;        // CNI_IFNAME
    std::string args;          // CNI_ARGS, KEY=VALUE;... (K8S_POD_NAME ...); checked, unused
};

// The network configuration: the spec's keys and vuswitch's.
struct NetConf {
    std::string cni_version;
    std::string name;                                    // the network's name
    std::string control_socket = "/run/vuswitch/vuswitchd.ctl";
    std::string state_file;                              // vuswitchd's --state-file (default: ports.json beside control_socket)
    std::string socket_dir = "/run/vuswitch/pods";      // host directory of the pods' sockets
    std::string pod_socket_dir;                          // where pods mount socket_dir (default: the same)
    std::optional<unsigned> mtu;                         // 68..9000
    std::optional<unsigned> vlan;                        // 0..4094, access VLAN
    std::string device_info_file;                        // runtimeConfig.CNIDeviceInfoFile (Multus)
};

// Where parse_env reads variables (getenv in the plugin, a map in the tests).
using GetEnv = std::function<std::optional<std::string>(const char* name)>;

// CNI_COMMAND and the variables it needs; invalid_env naming the variable otherwise.
std::expected<Env, CniError> parse_env(const GetEnv& get);
// The network configuration from stdin: decoding_failure (not JSON), incompatible_version,
// invalid_config (a missing or bad key, saying which and what it takes).
std::expected<NetConf, CniError> parse_config(std::string_view text);

// The vuswitch port of (container, interface): "<first 16 of the container id>-<ifname>",
// within vuswitchd's port-name rules (1..64 of A-Z a-z 0-9 . _ - :).
std::string port_name(const Env& env);
// SOCKET_DIR/<port name>.sock (host side) and POD_SOCKET_DIR/<port name>.sock (pod side).
std::string host_socket_path(const NetConf& conf, const Env& env);
std::string pod_socket_path(const NetConf& conf, const Env& env);

// The add_port request for the pod's port.
nlohmann::json add_port_request(const NetConf& conf, const Env& env);
// ADD's (and an idempotent repeated ADD's) result: one interface with its sandbox and
// its vhost-user socket (host path in "socketPath", CNI 1.1's field, also under 1.0).
nlohmann::json add_result(const NetConf& conf, const Env& env);
// The device-info-spec 1.1.0 document Multus copies into the pod's network-status
// annotation: vhost-user, mode "client" (the host made the socket), the pod's path.
nlohmann::json device_info(const NetConf& conf, const Env& env);
nlohmann::json version_result();
nlohmann::json error_result(const CniError& error);

}  // namespace vusw::cni
