// Command-line and config-file parsing (Boost.Program_options).
#include "control/config.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "control/vxlan_config.h"

namespace po = boost::program_options;

namespace vusw {
namespace {

constexpr const char* kUsage = R"(Usage: vuswitchd [OPTIONS]

A userspace virtual switch: vhost-user guests and DPDK NICs, switched by polling cores.
With no port options it starts the embedded default: two vhost-user server sockets,
RUN_DIR/vhost0.sock and RUN_DIR/vhost1.sock, and no NIC.

Options)";

constexpr const char* kPortOptions = R"(
Port options: after a port flag's PATH or DEVARGS, each after a `|` (quote it in a shell):
  --vhost-user '/run/vuswitch/vm1.sock|vlan=10|mtu=9000'
  --nic 'net_af_packet0,iface=eth1|vlan-mode=trunk|trunks=10,20,100-110'
  vhost-user = /run/vuswitch/vm1.sock|vlan=10          (in a --config file)
  name=NAME        the port's name: 1..64 of A-Z a-z 0-9 . _ - : (default: the socket's file
                   name without extension; for a NIC its devargs up to the first comma)
  mtu=BYTES        68..9000: the port's MTU, the largest frame payload (frame less its 14-byte
                   header and any 802.1Q tag) the switch sends to it; longer frames are
                   dropped (mtu_exceeded). Without mtu=, a vhost-user port takes the MTU its
                   front-end sets (VHOST_USER_NET_SET_MTU, QEMU host_mtu=) while it is
                   connected, else 1500. A front-end's MTU above mtu= is refused. NICs are
                   configured with the port's MTU (start-up fails if the device cannot take it)
  vlan-mode=MODE   access (default): the port is in one VLAN, its frames are untagged;
                   trunk: the port carries several VLANs as 802.1Q-tagged frames
  vlan=VID         0..4094. access: the port's VLAN (default 0, the untagged default VLAN);
                   trunk: its native VLAN, sent and received untagged (default 0)
  trunks=LIST      trunk only: the VLANs it carries tagged, e.g. 10,20,100-110 (default all: 1-4094)
Once any port has vlan-mode= or vlan=, every port follows the VLAN rules: a tagged frame
received on an access port, or a trunk's frame of a VLAN it does not carry, is dropped and
counted (vlan_tagged_on_access, vlan_not_allowed). With no VLAN option on any port the
switch is VLAN-transparent: frames pass as they are, tagged or not.
)";

constexpr const char* kPortOptionNames = "name, mtu, vlan-mode, vlan, trunks";

po::options_description describe()
{
    po::options_description d(kUsage);
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config", po::value<std::string>(), "read options from FILE (`name = value` lines, same names as the flags; at most 1 MiB)")
        ("vhost-user", po::value<std::vector<std::string>>(), "PATH[|OPTION=VALUE...]: vhost-user server socket (we listen, the guest's front-end connects); repeatable. Port options below")
        ("vhost-user-client", po::value<std::vector<std::string>>(), "PATH[|OPTION=VALUE...]: vhost-user client socket (the front-end listens; we connect and reconnect with backoff); repeatable")
        ("nic", po::value<std::vector<std::string>>(), "DEVARGS[|OPTION=VALUE...]: a DPDK ethdev (net_tap0,iface=x  net_af_packet0,iface=veth0  net_null0  0000:03:00.0); repeatable")
        ("vxlan", po::value<std::vector<std::string>>(), "NAME,local=IP[/PREFIX],remote=IP[,remote=IP...][,gateway=IP],vni=N[,dstport=PORT],underlay=NIC[|OPTION=VALUE...]: a VXLAN tunnel port (RFC 7348, IPv4 underlay) to the remote VTEPs over the --nic port NIC, which then is no switch port of its own (it answers ARP for local=); dstport default 4789; remotes inside local's subnet (local=IP/PREFIX; without a prefix: every remote) are reached directly, the others through gateway=IP (a router in that subnet, ARPed for once; the outer destination stays the remote's); the tunnel's MTU is the underlay's less 50 (1450 on 1500); one tunnel per underlay; repeatable (at run time: vuswitchctl add-port vxlan). Several VNIs: vni=N:VID instead of vni=N, once per VLAN (vni=5000:10,vni=5001:20): VNI N's frames are in VLAN VID in the switch, untagged on the wire, and the tunnel is a trunk of the mapped VLANs (no vlan=, vlan-mode=, trunks=); a frame of a VLAN without a VNI is dropped as vxlan_no_vni; every remote carries every VNI")
        ("lcores", po::value<std::string>(), "LIST: cores to use, e.g. 0,1 or 0-3: the first runs the control thread, the rest poll (default: 0,1); LCORE@CPU runs an lcore on another CPU, e.g. 0@0,1@1,2@1")
        ("pin", po::value<std::vector<std::string>>(), "PORT=PMD: PORT (as vuswitchctl show ports names it) (all its queues) is always polled by PMD core number PMD (0 = the second --lcores entry); repeatable. The queues of other ports are placed by load")
        ("rebalance-interval", po::value<long long>(), "SECONDS between automatic rebalances of the queues of unpinned ports by measured load, 0 = never (default 10; vuswitchctl rebalance runs one now)")
        ("rebalance-threshold", po::value<long long>(), "PERCENT: a rebalance moves queues only if it cuts the load imbalance between PMD cores by this much, 1..100 (default 25)")
        ("mac-age", po::value<long long>(), "SECONDS a learned MAC (the switch's FDB, a VXLAN tunnel's inner MACs) is kept without a frame from it, 1..86400 (default 300)")
        ("zero-copy-min", po::value<std::string>(), "BYTES: guest TX frames at least this long (without the virtio-net header) are lent to the switch without a copy, smaller ones copied; 60..65535 or `off` (default 1024: below it copying measured faster, perf/zero_copy.sh)")
        ("metrics", po::value<std::string>(), "ADDR:PORT for Prometheus /metrics, or `off` (default 127.0.0.1:9750)")
        ("control", po::value<std::string>(), "PATH of the management socket for vuswitchctl (default RUN_DIR/vuswitchd.ctl)")
        ("run-dir", po::value<std::string>(), "DIR for the default sockets and the state file (default /run/vuswitch)")
        ("state-file", po::value<std::string>(), "FILE where the ports added at run time (vuswitchctl add-port, vuswitch-cni) are recorded, to be added again when vuswitchd starts; or `none`: they go with the daemon (default RUN_DIR/ports.json: kept across a restart, not a reboot)")
        ("file-prefix", po::value<std::string>(), "DPDK file prefix, unique per DPDK process on the host (default vuswitch)")
        ("memory", po::value<long long>(), "MB of (huge page) memory for packet buffers, 64..65536 (default 256)")
        ("mbufs", po::value<long long>(), "N packet buffers in the pool, 511..4194303, each about 2.5 KiB of --memory (default: as many as fit in half of --memory, at most 16383); when all are in use, frames are dropped and counted as no_mbuf")
        ("no-huge", po::bool_switch(), "use ordinary memory instead of huge pages (tests, sanitizers)")
        ("huge-dir", po::value<std::string>(), "DIR: the hugetlbfs mount DPDK takes its pages from (default: any mounted); vuswitchd checks before start-up that it holds --memory and exits 1 saying what to run if not")
        ("user", po::value<std::string>(), "NAME or UID: once the NICs, sockets and PMD cores are set up, continue as this user without any capability (README, Least privilege); RUN_DIR is chowned to it")
        ("group", po::value<std::string>(), "NAME or GID: the group to continue as with --user (default: the user's primary group)")
        ("socket-mode", po::value<std::string>(), "OCTAL permission mode of the vhost-user server sockets; front-ends need write permission to connect (default 0660: owner and group)")
        ("socket-group", po::value<std::string>(), "NAME or GID: group of the vhost-user server sockets, e.g. the group QEMU runs as (default: --group with --user, else root's)")
        ("ctl-socket-mode", po::value<std::string>(), "OCTAL permission mode of the control socket; vuswitchctl needs write permission (default 0660: owner and group)")
        ("ctl-socket-group", po::value<std::string>(), "NAME or GID: group of the control socket, whose members may use vuswitchctl (default: --group with --user, else root's)")
        ("log-level", po::value<std::string>(), "error|warn|info|debug (default info)")
        ("debug-dirty-log-always", po::bool_switch(), "BENCHMARKS ONLY: every guest logs its writes into a private dirty log as if it were migrating (perf/dirty_log.sh measures what logging costs)")
        ("debug-no-dirty-log", po::bool_switch(), "TESTS ONLY: negotiate live-migration dirty logging but never write the log, so a migrated guest wakes up with stale memory (the control run of tests/vm/migrate.sh)");
    return d;
}

Result<LogLevel> parse_level(const std::string& s)
{
    static const std::pair<const char*, LogLevel> kLevels[] = {
        {"error", LogLevel::error}, {"warn", LogLevel::warn}, {"info", LogLevel::info}, {"debug", LogLevel::debug}};
    for (const auto& [name, level] : kLevels)
        if (s == name)
            return level;
    return fail("config", fmt::format("--log-level {}: expected error, warn, info or debug", s));
}

std::vector<unsigned> default_lcores()
{
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return cores >= 2 ? std::vector<unsigned>{0, 1} : std::vector<unsigned>{0, 0};
}

Status parse_pins(const std::vector<std::string>& specs, Config& c)
{
    const std::vector<std::string> names = port_names(c);
    const unsigned pmds = unsigned(c.lcores.size() - 1);
    for (const std::string& spec : specs) {
        const auto eq = spec.rfind('=');
        const std::string digits = eq == std::string::npos ? "" : spec.substr(eq + 1);
        unsigned pmd = 0;
        std::stringstream number(digits);
        if (eq == std::string::npos || eq == 0 || digits.empty() || digits.size() > 4 ||
            digits.find_first_not_of("0123456789") != std::string::npos || !(number >> pmd))
            return fail("config", fmt::format("--pin {}: expected PORT=PMD, e.g. vm1=0", spec));
        const std::string port = spec.substr(0, eq);
        if (std::find(names.begin(), names.end(), port) == names.end())
            return fail("config", fmt::format("--pin {}: no port named {} (the ports are: {})", spec, port,
                                              fmt::join(names, ", ")));
        if (pmd >= pmds)
            return fail("config", fmt::format("--pin {}: PMD {} out of range: --lcores gives {} PMD core{} (0..{})", spec,
                                              pmd, pmds, pmds == 1 ? "" : "s", pmds - 1));
        for (const auto& [other, where] : c.pins)
            if (other == port && where != pmd)
                return fail("config", fmt::format("--pin {}: port {} is already pinned to PMD {}", spec, port, where));
        c.pins.emplace_back(port, pmd);
    }
    return {};
}

// Integer option `key` into `out` if given; an error naming the flag and `expected` (the
// range in words) unless it is lo..hi.
Status to_ranged(const po::variables_map& vm, const char* key, long long lo, long long hi, const char* expected,
                 unsigned& out)
{
    if (!vm.count(key))
        return {};
    const long long v = vm[key].as<long long>();
    if (v < lo || v > hi)
        return fail("config", fmt::format("--{} {}: expected {}", key, v, expected));
    out = unsigned(v);
    return {};
}

Status to_rebalance(const po::variables_map& vm, Config& c)
{
    if (auto ok = to_ranged(vm, "rebalance-interval", 0, 86400, "0 (off) .. 86400 seconds", c.rebalance_interval_s); !ok)
        return ok;
    return to_ranged(vm, "rebalance-threshold", 1, 100, "1..100 percent", c.rebalance_threshold_pct);
}

Status to_zero_copy(const po::variables_map& vm, Config& c)
{
    if (!vm.count("zero-copy-min"))
        return {};
    const std::string v = vm["zero-copy-min"].as<std::string>();
    if (v == "off") {
        c.zero_copy_min = 0;
        return {};
    }
    unsigned bytes = 0;
    std::stringstream number(v);
    if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos || !(number >> bytes) ||
        bytes < 60 || bytes > 65535)
        return fail("config", fmt::format("--zero-copy-min {}: expected a frame size 60..65535 or off", v));
    c.zero_copy_min = bytes;
    return {};
}

// A decimal number lo..hi (digits only).
std::optional<unsigned> number_in(const std::string& s, unsigned lo, unsigned hi)
{
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    const unsigned v = unsigned(std::stoul(s));
    return v >= lo && v <= hi ? std::optional(v) : std::nullopt;
}

bool valid_port_name(const std::string& name)
{
    return !name.empty() && name.size() <= 64 &&
           name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:") == std::string::npos;
}

// One NAME=VALUE port option into `spec`; an error message (without the flag) if bad.
std::optional<std::string> apply_port_option(const std::string& item, PortSpec& spec)
{
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
        return fmt::format("port option `{}`: expected NAME=VALUE ({})", item, kPortOptionNames);
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    PortConfig& p = spec.settings;
    if (key == "name") {
        if (!valid_port_name(value))
            return fmt::format("name={}: expected 1..64 characters of A-Z a-z 0-9 . _ - :", value);
        spec.name = value;
    } else if (key == "mtu") {
        const auto mtu = number_in(value, PortConfig::kMinMtu, PortConfig::kMaxMtu);
        if (!mtu)
            return fmt::format("mtu={}: expected {}..{} bytes", value, PortConfig::kMinMtu, PortConfig::kMaxMtu);
        p.mtu = uint16_t(*mtu);
        p.mtu_given = true;
    } else if (key == "vlan-mode") {
        if (value != "access" && value != "trunk")
            return fmt::format("vlan-mode={}: expected access or trunk", value);
        p.vlan_mode = value == "trunk" ? VlanMode::trunk : VlanMode::access;
    } else if (key == "vlan") {
        const auto vid = number_in(value, 0, kVlanIdMax);
        if (!vid)
            return fmt::format("vlan={}: expected a VLAN id 0..{} (0: the untagged default VLAN)", value, kVlanIdMax);
        p.vlan = uint16_t(*vid);
    } else if (key == "trunks") {
        auto set = parse_vlan_list(value);
        if (!set)
            return fmt::format("trunks={}: {}", value, set.error().detail);
        p.trunks = *set;
    } else {
        return fmt::format("unknown port option `{}` (options: {})", key, kPortOptionNames);
    }
    return std::nullopt;
}

// Two ports may not share a name (vuswitchctl, --pin and the metrics name them).
Status check_port_names(const Config& c)
{
    std::map<std::string, std::string> targets;  // by name
    for (const auto* specs : {&c.nics, &c.vxlans, &c.vhost_server, &c.vhost_client})
        for (const PortSpec& p : *specs)
            if (auto [it, fresh] = targets.emplace(p.name, p.target); !fresh)
                return fail("config", fmt::format("two ports are named {} ({} and {}); give one another name with |name=NAME",
                                                  p.name, it->second, p.target));
    return {};
}

Status to_ports(const po::variables_map& vm, Config& c)
{
    const std::pair<const char*, std::vector<PortSpec>*> flags[] = {
        {"vhost-user", &c.vhost_server}, {"vhost-user-client", &c.vhost_client}, {"nic", &c.nics}, {"vxlan", &c.vxlans}};
    for (const auto& [key, specs] : flags) {
        if (!vm.count(key))
            continue;
        for (const std::string& value : vm[key].as<std::vector<std::string>>()) {
            auto spec = parse_port_spec(std::string("--") + key, value, specs == &c.nics || specs == &c.vxlans);
            if (!spec)
                return std::unexpected(spec.error());
            specs->push_back(std::move(*spec));
        }
    }
    return {};
}

// --memory, --mbufs, --no-huge, --huge-dir.
Status to_memory(const po::variables_map& vm, Config& c)
{
    if (auto ok = to_ranged(vm, "memory", 64, 65536, "64..65536 MB", c.memory_mb); !ok)
        return ok;
    if (auto ok = to_ranged(vm, "mbufs", 511, 4194303, "511..4194303 packet buffers", c.mbufs); !ok)
        return ok;
    // The pool may take 3/4 of --memory; DPDK needs the rest for rings and queues.
    if (const uint64_t need_mb = uint64_t(c.mbufs) * kMbufFootprint * 4 / 3 / (1 << 20) + 1; c.mbufs && need_mb > c.memory_mb)
        return fail("config", fmt::format("--mbufs {} needs --memory {} or more (a packet buffer takes about 2.5 KiB); "
                                          "raise --memory or lower --mbufs", c.mbufs, need_mb));
    c.no_huge = vm["no-huge"].as<bool>();
    if (vm.count("huge-dir"))
        c.huge_dir = vm["huge-dir"].as<std::string>();
    if (!c.huge_dir.empty() && c.no_huge)
        return fail("config", "--huge-dir and --no-huge: pick one (--no-huge uses no hugepages at all)");
    return {};
}

// --socket-mode/--socket-group or --ctl-socket-mode/--ctl-socket-group (`prefix`).
Status to_socket_access(const po::variables_map& vm, const std::string& prefix, const Config& c, SocketAccess& a)
{
    if (vm.count(prefix + "-mode")) {
        auto mode = parse_mode("--" + prefix + "-mode", vm[prefix + "-mode"].as<std::string>());
        if (!mode)
            return std::unexpected(mode.error());
        a.mode = *mode;
    }
    if (vm.count(prefix + "-group")) {
        auto group = lookup_group("--" + prefix + "-group", vm[prefix + "-group"].as<std::string>());
        if (!group)
            return std::unexpected(group.error());
        a.group = *group;
    } else if (c.user) {
        a.group = c.group;  // sockets bound before and after the drop alike
    }
    return {};
}

Status to_privileges(const po::variables_map& vm, Config& c)
{
    if (vm.count("group") && !vm.count("user"))
        return fail("config", "--group is the group to continue as with --user; give --user too");
    if (vm.count("user")) {
        auto user = lookup_user("--user", vm["user"].as<std::string>());
        if (!user)
            return std::unexpected(user.error());
        c.user = *user;
        auto group = lookup_group("--group", vm.count("group") ? vm["group"].as<std::string>() : primary_group_of(c.user->id));
        if (!group)
            return std::unexpected(group.error());
        c.group = *group;
    }
    if (auto ok = to_socket_access(vm, "socket", c, c.socket_access); !ok)
        return ok;
    return to_socket_access(vm, "ctl-socket", c, c.ctl_socket_access);
}

// --state-file FILE or none (after --run-dir, whose ports.json is the default).
Status to_state_file(const po::variables_map& vm, Config& c)
{
    c.state_file = c.run_dir + "/ports.json";
    if (!vm.count("state-file"))
        return {};
    const std::string file = vm["state-file"].as<std::string>();
    if (file.empty() || file.back() == '/')
        return fail("config", fmt::format("--state-file `{}`: expected a FILE, or none to keep no ports across a restart",
                                          file));
    c.state_file = file == "none" ? "" : file;
    return {};
}

Status to_config(const po::variables_map& vm, Config& c)
{
    auto list = [&](const char* key) { return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{}; };
    if (auto ok = to_ports(vm, c); !ok)
        return ok;
    if (vm.count("run-dir"))
        c.run_dir = vm["run-dir"].as<std::string>();
    if (vm.count("metrics"))
        c.metrics = vm["metrics"].as<std::string>();
    c.control = vm.count("control") ? vm["control"].as<std::string>() : c.run_dir + "/vuswitchd.ctl";
    if (auto ok = to_state_file(vm, c); !ok)
        return ok;
    if (vm.count("file-prefix"))
        c.file_prefix = vm["file-prefix"].as<std::string>();
    if (auto ok = to_memory(vm, c); !ok)
        return ok;
    if (auto ok = to_privileges(vm, c); !ok)
        return ok;
    c.debug_no_dirty_log = vm["debug-no-dirty-log"].as<bool>();
    c.debug_dirty_log_always = vm["debug-dirty-log-always"].as<bool>();
    if (vm.count("log-level")) {
        auto level = parse_level(vm["log-level"].as<std::string>());
        if (!level)
            return std::unexpected(level.error());
        c.log_level = *level;
    }
    if (vm.count("lcores")) {
        auto lcores = parse_lcore_list(vm["lcores"].as<std::string>());
        if (!lcores)
            return std::unexpected(lcores.error());
        c.lcores = lcores->ids;
        c.lcore_cpus = lcores->cpus;
    } else {
        c.lcores = default_lcores();
        c.lcore_cpus.assign(c.lcores.size(), -1);
    }
    if (c.lcores.size() < 2)
        return fail("config", "--lcores needs at least two cores: one control core and one PMD core");
    if (c.lcores.size() - 1 > 16)
        return fail("config", "--lcores: at most 16 PMD cores");
    if (c.vhost_server.empty() && c.vhost_client.empty() && c.nics.empty()) {
        for (const char* file : {"/vhost0.sock", "/vhost1.sock"})
            c.vhost_server.push_back(PortSpec{c.run_dir + file, port_name_from_path(c.run_dir + file), {}});
        c.used_default_ports = true;
    }
    if (auto ok = check_port_names(c); !ok)
        return ok;
    if (auto ok = check_vxlans(c); !ok)
        return ok;
    if (c.metrics != "off" && c.metrics.rfind(':') == std::string::npos)
        return fail("config", fmt::format("--metrics {}: expected ADDR:PORT (e.g. 127.0.0.1:9750) or off", c.metrics));
    if (auto ok = to_ranged(vm, "mac-age", 1, 86400, "1..86400 seconds", c.mac_age_s); !ok)
        return ok;
    if (auto ok = to_rebalance(vm, c); !ok)
        return ok;
    if (auto ok = to_zero_copy(vm, c); !ok)
        return ok;
    return parse_pins(list("pin"), c);
}

// Refuses text Boost would hang on (boost_placeholder); `where` says which argument or line.
Status refuse_placeholder(std::string_view text, const std::string& where)
{
    if (const auto placeholder = boost_placeholder(text))
        return fail("config", fmt::format("{}: `{}` cannot be read: text between two % like {} is what the option "
                                          "parser (Boost.Program_options 1.74) fills its messages with, and it loops "
                                          "forever on it; remove or rename it",
                                          where, *placeholder, *placeholder));
    return {};
}

Status check_placeholders(int argc, const char* const* argv)
{
    for (int i = 1; i < argc; ++i)
        if (auto ok = refuse_placeholder(argv[i], fmt::format("argument {}", i)); !ok)
            return ok;
    return {};
}

constexpr std::size_t kMaxConfigBytes = 1 << 20;

// The --config file's text, every line checked for placeholders.
Result<std::string> read_config_file(const std::string& file)
{
    std::ifstream in(file);
    if (!in)
        return fail("config", fmt::format("--config {}: cannot open the file", file));
    std::string text;
    char buf[4096];
    while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
        text.append(buf, std::size_t(in.gcount()));
        if (text.size() > kMaxConfigBytes)  // e.g. --config /dev/zero, which would never end
            return fail("config", fmt::format("--config {}: longer than {} bytes; is it the config file?", file,
                                              kMaxConfigBytes));
    }
    std::istringstream lines(text);
    std::string line;
    for (unsigned n = 1; std::getline(lines, line); ++n)
        if (auto ok = refuse_placeholder(line, fmt::format("--config {} line {}", file, n)); !ok)
            return std::unexpected(ok.error());
    return text;
}

}  // namespace

unsigned pool_mbufs(const Config& c)
{
    if (c.mbufs != 0)
        return c.mbufs;
    const uint64_t fit = uint64_t(c.memory_mb) * (1 << 20) / 2 / kMbufFootprint;
    unsigned n = 511;
    while (n < 16383 && uint64_t(n) * 2 + 1 <= fit)
        n = n * 2 + 1;
    return n;
}


Result<LcoreList> parse_lcore_list(const std::string& list)
{
    LcoreList out;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        unsigned lo = 0, hi = 0, cpu = 0;
        char sep = 0;
        std::stringstream one(item);
        if (!(one >> lo) || ((one >> sep) && ((sep != '-' && sep != '@') || !(one >> hi) || (sep == '-' && hi < lo))) ||
            !one.eof() || lo > 1023 || hi > 1023)
            return fail("config", fmt::format("--lcores {}: `{}` is not a core, a range like 2-3 or LCORE@CPU like 2@1",
                                              list, item));
        if (sep == '@')
            std::swap(cpu, hi), hi = lo;
        else if (sep == 0)
            hi = lo;
        for (unsigned c = lo; c <= hi; ++c) {
            if (std::find(out.ids.begin(), out.ids.end(), c) != out.ids.end())
                return fail("config", fmt::format("--lcores {}: lcore {} is listed twice", list, c));
            out.ids.push_back(c);
            out.cpus.push_back(sep == '@' ? int(cpu) : -1);
        }
    }
    if (out.ids.empty() || list.back() == ',')
        return fail("config", fmt::format("--lcores `{}`: expected a list like 0,1 or 0-3", list));
    return out;
}

Result<std::vector<unsigned>> parse_lcores(const std::string& list)
{
    auto parsed = parse_lcore_list(list);
    if (!parsed)
        return std::unexpected(parsed.error());
    return parsed->ids;
}

std::string port_name_from_path(const std::string& path)
{
    std::string name = path.substr(path.find_last_of('/') + 1);
    const auto dot = name.find('.');
    return dot == 0 || dot == std::string::npos ? name : name.substr(0, dot);
}

std::vector<std::string> port_names(const Config& c)
{
    std::vector<std::string> names;
    for (const auto& [kind, spec] : port_specs(c))
        names.push_back(spec.name);
    return names;
}

std::string_view port_kind_name(PortKind kind)
{
    switch (kind) {
    case PortKind::vhost_server: return "vhost-user";
    case PortKind::vhost_client: return "vhost-user-client";
    case PortKind::nic: return "nic";
    case PortKind::vxlan: return "vxlan";
    }
    return "?";
}

std::vector<std::pair<PortKind, PortSpec>> port_specs(const Config& c)
{
    std::vector<std::pair<PortKind, PortSpec>> out;
    for (const auto& [kind, specs] : {std::pair{PortKind::nic, &c.nics}, std::pair{PortKind::vxlan, &c.vxlans},
                                      std::pair{PortKind::vhost_server, &c.vhost_server},
                                      std::pair{PortKind::vhost_client, &c.vhost_client}})
        for (const PortSpec& p : *specs)
            if (kind != PortKind::nic || !is_underlay(c, p.name))  // a tunnel's underlay is part of the tunnel
                out.emplace_back(kind, p);
    return out;
}

std::optional<unsigned> pin_of(const Config& c, const std::string& name)
{
    for (const auto& [port, pmd] : c.pins)
        if (port == name)
            return pmd;
    return std::nullopt;
}

bool looks_like_pci(const std::string& devargs)
{
    return devargs.size() >= 7 && std::isxdigit(static_cast<unsigned char>(devargs[0])) &&
           devargs.find(':') != std::string::npos && devargs.rfind("net_", 0) != 0;
}

bool same_port(const PortSpec& a, const PortSpec& b)
{
    return a.target == b.target && a.name == b.name && a.settings == b.settings;
}

Result<VlanSet> parse_vlan_list(const std::string& list)
{
    VlanSet set;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        const auto dash = item.find('-');
        const auto lo = number_in(item.substr(0, dash), 1, kVlanIdMax);
        const auto hi = dash == std::string::npos ? lo : number_in(item.substr(dash + 1), 1, kVlanIdMax);
        if (!lo || !hi || *hi < *lo)
            return fail("config", fmt::format("`{}` is not a VLAN id 1..{} or a range like 100-110", item, kVlanIdMax));
        for (unsigned v = *lo; v <= *hi; ++v)
            set.add(uint16_t(v));
    }
    if (set.empty() || list.back() == ',')
        return fail("config", "expected VLAN ids 1..4094 and ranges, e.g. 10,20,100-110");
    return set;
}

Result<PortSpec> parse_port_spec(const std::string& flag, const std::string& value, bool nic)
{
    PortSpec spec;
    auto bar = value.find('|');
    spec.target = value.substr(0, bar);
    if (spec.target.empty())
        return fail("config", fmt::format("{} {}: expected {} before the options", flag, value, nic ? "DEVARGS" : "a PATH"));
    std::set<std::string> seen;
    bool trunks = false;
    while (bar != std::string::npos) {
        const auto next = value.find('|', bar + 1);
        const std::string item = value.substr(bar + 1, next == std::string::npos ? std::string::npos : next - bar - 1);
        bar = next;
        const std::string key = item.substr(0, item.find('='));
        std::optional<std::string> why;
        if (!seen.insert(key).second)
            why = fmt::format("port option {} given twice", key);
        else
            why = apply_port_option(item, spec);
        if (why)
            return fail("config", fmt::format("{} {}: {}", flag, value, *why));
        trunks |= key == "trunks";
    }
    if (trunks && spec.settings.vlan_mode != VlanMode::trunk)
        return fail("config", fmt::format("{} {}: trunks= is for trunk ports; add |vlan-mode=trunk", flag, value));
    if (!nic && spec.target.back() == '/')
        return fail("config", fmt::format("{} {}: `{}` names a directory; give the socket's file path, e.g. {}vm1.sock",
                                          flag, value, spec.target, spec.target));
    if (spec.name.empty()) {
        spec.name = nic ? spec.target.substr(0, spec.target.find(',')) : port_name_from_path(spec.target);
        if (!valid_port_name(spec.name))  // the names vuswitchctl, --pin and the metrics use
            return fail("config", fmt::format("{} {}: {} `{}` does not make a port name (1..64 of A-Z a-z 0-9 . _ - :); "
                                              "give the port one with |name=NAME",
                                              flag, value, nic ? "the devargs name" : "the socket file name", spec.name));
    }
    return spec;
}

Result<ParsedArgs> parse_args(int argc, const char* const* argv)
{
    const po::options_description desc = describe();
    po::variables_map vm;
    try {
        if (auto ok = check_placeholders(argc, argv); !ok)
            return std::unexpected(ok.error());
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("config")) {
            auto text = read_config_file(vm["config"].as<std::string>());
            if (!text)
                return std::unexpected(text.error());
            std::istringstream in(*text);
            po::store(po::parse_config_file(in, desc), vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        return fail("config", fmt::format("{} (see vuswitchd --help)", e.what()));
    }
    ParsedArgs parsed;
    if (vm.count("help")) {
        std::stringstream text;
        text << desc << kPortOptions << "\nSee vuswitchctl --help for managing a running switch.\n";
        parsed.print = text.str();
        return parsed;
    }
    if (vm.count("version")) {
        parsed.print = "vuswitchd " VUSW_VERSION "\n";
        return parsed;
    }
    if (auto ok = to_config(vm, parsed.config); !ok)
        return std::unexpected(ok.error());
    return parsed;
}

std::optional<std::string> boost_placeholder(std::string_view text)
{
    for (auto open = text.find('%'); open != std::string_view::npos; open = text.find('%', open + 1)) {
        const auto close = text.find('%', open + 1);
        if (close == std::string_view::npos)
            break;
        const std::string_view name = text.substr(open + 1, close - open - 1);
        if (!name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos)
            return std::string(text.substr(open, close - open + 1));
    }
    return std::nullopt;
}

}  // namespace vusw
