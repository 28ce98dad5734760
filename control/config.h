// vuswitchd configuration: command line and config file (same option names).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/privileges.h"
#include "vusw/log.h"
#include "vusw/result.h"
#include "vusw/vlan.h"

namespace vusw {

// One port flag's value: `PATH` or `DEVARGS`, optionally followed by port options,
// each after a `|`: `/run/vuswitch/vm1.sock|vlan=10|mtu=9000`. DPDK devargs use `,` and
// `=` themselves, never `|`.
struct PortSpec {
    std::string target;    // PATH or DEVARGS, without the options
    std::string name;      // name=, else derived from the target (port_name_from_path, devargs up to the first comma)
    PortConfig settings;   // mtu=, vlan-mode=, vlan=, trunks=
};

// The kinds of port a PortSpec can describe.
enum class PortKind { vhost_server, vhost_client, nic, vxlan };
std::string_view port_kind_name(PortKind kind);  // "vhost-user", "vhost-user-client", "nic", "vxlan": the flags

struct Config {
    std::vector<PortSpec> vhost_server;     // --vhost-user PATH[|OPTIONS]
    std::vector<PortSpec> vhost_client;     // --vhost-user-client PATH[|OPTIONS]
    std::vector<PortSpec> nics;             // --nic DEVARGS[|OPTIONS]
    std::vector<PortSpec> vxlans;           // --vxlan NAME,local=...[|OPTIONS] (control/vxlan_config.h)
    std::vector<unsigned> lcores;           // control core first, then PMD cores
    std::vector<int> lcore_cpus;            // by lcore: its CPU (LCORE@CPU), -1 = the CPU of the same number
    std::vector<std::pair<std::string, unsigned>> pins;  // --pin PORT=PMD: port name, PMD index
    unsigned rebalance_interval_s = 10;     // 0 = no automatic rebalancing
    unsigned rebalance_threshold_pct = 25;  // least imbalance improvement worth moving ports for
    unsigned mac_age_s = 300;               // learned MACs (switch FDB, tunnels' inner MACs) unseen this long go
    uint32_t zero_copy_min = 1024;           // --zero-copy-min: guest TX frames this long are lent; 0 = never
    std::string metrics = "127.0.0.1:9750"; // "off" disables
    std::string control;                    // default: RUN_DIR/vuswitchd.ctl
    std::string run_dir = "/run/vuswitch";
    std::string state_file;                 // --state-file: ports added at run time (default RUN_DIR/ports.json); "" = none
    std::string file_prefix = "vuswitch";
    unsigned memory_mb = 256;
    unsigned mbufs = 0;                     // --mbufs: packet buffers in the pool; 0 = pool_mbufs() sizes it
    bool no_huge = false;
    std::string huge_dir;                   // --huge-dir: the hugetlbfs mount DPDK uses ("": any)
    std::optional<Identity> user;           // --user: continue as this user after start-up
    std::optional<Identity> group;          // --group, else the user's primary group (with --user only)
    SocketAccess socket_access;             // --socket-mode, --socket-group: vhost-user server sockets
    SocketAccess ctl_socket_access;         // --ctl-socket-mode, --ctl-socket-group: the control socket
    bool debug_no_dirty_log = false;          // --debug-no-dirty-log (tests only)
    bool debug_dirty_log_always = false;      // --debug-dirty-log-always (benchmarks only)
    LogLevel log_level = LogLevel::info;
    bool used_default_ports = false;
};

// What a reload changed (vuswitchctl reload, SIGHUP).
struct ReloadReport {
    std::vector<std::string> added, removed, kept;  // port names
    std::vector<std::string> failed;   // "NAME: why" of ports that could not be added or removed
    std::vector<std::string> ignored;  // options other than ports that changed: they need a restart
};

// What parse_args() decided: run with a config, or print text and exit.
struct ParsedArgs {
    Config config;
    std::string print;  // --help / --version text; empty to run
};

// Parses argv (and --config FILE); errors say which option and what to do.
Result<ParsedArgs> parse_args(int argc, const char* const* argv);
// The first `%name%` in `text` (lowercase letters and `_` between two %): Boost's error
// templates use such placeholders and 1.74 never stops replacing one whose value contains
// it, so parse_args() refuses arguments and config lines with one before Boost sees them.
std::optional<std::string> boost_placeholder(std::string_view text);
// --lcores: lcore ids and, for LCORE@CPU items, the CPU each runs on.
struct LcoreList {
    std::vector<unsigned> ids;
    std::vector<int> cpus;  // by id; -1 = the CPU of the same number
};
// "0,1", "0-2", "0,2-3", "0@0,1@1,2@1" (several lcores may share a CPU).
Result<LcoreList> parse_lcore_list(const std::string& list);
// The lcore ids of parse_lcore_list().
Result<std::vector<unsigned>> parse_lcores(const std::string& list);
// The port name for a socket path: its file name without extension.
std::string port_name_from_path(const std::string& path);
// A port flag's value (`flag` names the flag in errors; `nic`: DEVARGS, not a PATH).
Result<PortSpec> parse_port_spec(const std::string& flag, const std::string& value, bool nic);
// A trunks= list: VLAN ids 1..4094 and ranges, e.g. "10,20,100-110".
Result<VlanSet> parse_vlan_list(const std::string& list);
// The names of the ports `c` creates, in creation order (NICs, VXLAN tunnels, servers,
// clients; a tunnel's underlay NIC is not a port).
std::vector<std::string> port_names(const Config& c);

// Bytes of DPDK memory one packet buffer takes (mbuf header, headroom, 2 KiB of data,
// the mempool's object header), rounded up.
inline constexpr uint64_t kMbufFootprint = 2560;
// Packet buffers in the pool: --mbufs, else as many as fit in half of --memory, as
// 2^k - 1 (DPDK's mempools are most compact so), at least 511 and at most 16383.
unsigned pool_mbufs(const Config& c);
// The ports `c` creates, in creation order, with their kinds.
std::vector<std::pair<PortKind, PortSpec>> port_specs(const Config& c);
// The PMD --pin PORT=PMD puts port `name` on, if any.
std::optional<unsigned> pin_of(const Config& c, const std::string& name);
// A PCI address (0000:03:00.0[,...]) rather than a virtual device (net_tap0,...).
bool looks_like_pci(const std::string& devargs);
// Same target, name and settings: a reload leaves the port alone.
bool same_port(const PortSpec& a, const PortSpec& b);

}  // namespace vusw
