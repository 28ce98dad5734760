// vuswitch-cni: the CNI 1.0 plugin that gives a Kubernetes pod a vhost-user port on the
// node's vuswitchd (README, "Kubernetes"). The runtime (kubelet, Multus) runs it with
// CNI_COMMAND and friends in the environment and the network configuration on stdin; it
// prints the result (or a CNI error) on stdout and exits 0 (or 1).
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>

#include <fmt/format.h>

#include "control/cni/plugin.h"
#include "control/cni/spec.h"

namespace {

constexpr const char* kUsage = R"(Usage: CNI_COMMAND=ADD|DEL|CHECK|VERSION CNI_CONTAINERID=ID CNI_NETNS=PATH CNI_IFNAME=NAME \
       vuswitch-cni < NETWORK-CONFIG.json

A CNI 1.0.0 plugin: kubelet (through Multus) runs it; it asks vuswitchd, over its control
socket, for a vhost-user server port per pod interface, named <first 16 of the container
id>-<ifname>, with its socket at <socketDir>/<port name>.sock.

Network configuration keys (besides cniVersion "1.0.0", name, type "vuswitch-cni"):
  controlSocket  vuswitchd's control socket        (default /run/vuswitch/vuswitchd.ctl)
  socketDir      host directory for the pods' vhost-user sockets (default /run/vuswitch/pods)
  podSocketDir   where pods mount socketDir, for the device-info Multus passes to the pod
                 (default: socketDir)
  mtu            68..9000: the port's MTU           (default: the front-end's, else 1500)
  vlan           0..4094: the port's access VLAN     (default 0)
  capabilities {"CNIDeviceInfoFile": true}: write device-info (type vhost-user, mode client,
                 path in the pod) where Multus asks, for the pod's network-status annotation

Exit status 0 with the result on stdout, or 1 with a CNI error object on stdout
({"cniVersion","code","msg","details"}): 1 incompatible cniVersion, 4 bad environment,
5 I/O failure, 6 stdin is not JSON, 7 bad network configuration, 11 vuswitchd not
reachable (try again later), 100 vuswitchd refused the port, 101 CHECK: the port or its
socket is gone, 102 the port name belongs to another socket.
)";

std::optional<std::string> from_environment(const char* name)
{
    const char* value = std::getenv(name);
    return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
}

int print_error(const vusw::cni::CniError& error)
{
    std::cout << vusw::cni::error_result(error).dump() << '\n';
    return 1;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc > 1) {  // the runtime passes no arguments
        const std::string a = argv[1];
        fmt::print(a == "-h" || a == "--help" ? stdout : stderr, "{}", kUsage);
        return a == "-h" || a == "--help" ? 0 : 2;
    }
    const auto env = vusw::cni::parse_env(from_environment);
    if (!env)
        return print_error(env.error());
    const std::string config{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    const auto result = vusw::cni::run(*env, config);
    if (!result)
        return print_error(result.error());
    if (!result->is_null())
        std::cout << result->dump() << '\n';
    return 0;
}
