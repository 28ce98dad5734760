// vuswitchctl: ask a running vuswitchd about its ports, cores and MAC table; place ports
// on cores; clear the views' statistics, set the log level.
//
// One request per run over the control socket (README, "Control socket protocol"). Exit
// status for scripts: 0 the daemon did it, 1 the daemon answered with an error, 2 usage
// error (nothing sent), 3 the daemon could not be reached or gave no valid answer.

#include <algorithm>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "control/control_client.h"

namespace {

constexpr unsigned kProtocolVersion = 1;  // the control protocol this vuswitchctl speaks (management.h)
enum Exit { kOk = 0, kDaemonError = 1, kUsageError = 2, kUnreachable = 3 };

constexpr const char* kUsage = R"(Usage: vuswitchctl [--control PATH] [--json] COMMAND

Commands:
  show ports       ports with origin (config: the command line or --config file; runtime:
                   added with add-port or by vuswitch-cni, recorded in the state file and
                   added again when vuswitchd restarts), state, counters and drops by
                   reason, VLAN membership and MTU
                   (the MTU the switch enforces, and where it comes from: config = the
                   port's mtu=, front-end = its NET_SET_MTU, default = 1500); for
                   vhost-user ports also the negotiated features, ring type
                   (split|packed), the front-end's MTU and queue pairs (ring sizes, the PMD
                   polling each, frames per pair in the JSON)
  show port NAME   one port in full: counters, drops by reason, MTU and VLANs; for
                   vhost-user ports the negotiated features and protocol features by name,
                   each ring's state (stopped|started|enabled|broken (reason)), size,
                   position (last avail and used index) and PMD, the guest memory regions
                   (GPA, size, front-end address, DMA-registered), message counts, protocol
                   errors and the last few with time and detail, and the dirty log
  show pmd         PMD cores: busy/idle cycles, busy %, packets, cycles per packet (busy
                   cycles / packets), a histogram of packets per loop turn, longest loop
                   turn, turns over 1 ms, and the port queues each polls (a vhost-user queue
                   pair or a NIC queue is the unit a core polls) with their load (share of
                   the core's cycles over the last 10 s) and whether their port is pinned
  show fdb         learned MAC addresses
  show config      the effective configuration, as lines of a --config file
  clear stats      the counters of these views start from zero again (the daemon keeps
                   them; Prometheus counters on /metrics never go back)
  set log-level LEVEL
                   error, warn, info or debug, from now on
  version          vuswitchctl's, the daemon's and the control protocol's versions; the
                   control socket's open and dropped connections
  rebalance        place the queues of unpinned ports on PMD cores by measured load now
                   (queues move only if that cuts the load imbalance by the threshold,
                   --rebalance-threshold)
  pin PORT PMD     poll all of PORT's queues on PMD core number PMD from now on (moves them
                   now; no rebalance moves them again)
  unpin PORT       let rebalancing move PORT again
  add-port vhost-user PATH [--client] [PORT OPTIONS]
                   a vhost-user port now, without a restart: vuswitchd listens on PATH
                   (the guest's front-end connects; QEMU's default), or with --client
                   connects to PATH (QEMU server=on) and reconnects with backoff
  add-port nic DEVARGS [PORT OPTIONS]
                   a DPDK virtual device now (net_tap0,iface=x  net_af_packet0,iface=veth0
                   net_null0 ...); PCI NICs are given at start-up (--nic)
  add-port vxlan NAME,local=IP[/PREFIX],remote=IP[,remote=IP...][,gateway=IP],vni=N[,dstport=PORT],underlay=NIC
                 [--underlay DEVARGS] [--underlay-mtu BYTES] [PORT OPTIONS but --name]
                   a VXLAN tunnel now (as vuswitchd's --vxlan) over a DPDK virtual device it
                   opens as its underlay, named NIC (net_af_packet0,iface=eth1 ...; its MTU
                   1500 unless --underlay-mtu; the tunnel's is 50 less); without --underlay,
                   NIC is a --nic of the configuration that no port uses now (e.g. that of
                   a tunnel removed with del-port). del-port closes the underlay too
                   Several VNIs: vni=N:VID once per VLAN instead of vni=N (vni=5000:10,
                   vni=5001:20): VNI N carries VLAN VID, the tunnel is a trunk of them
      PORT OPTIONS: --name NAME (default: the socket's file name without extension, or the
                   devargs up to the first comma), --mtu BYTES, --vlan VID,
                   --vlan-mode access|trunk, --trunks LIST (see vuswitchd --help)
                   Every port add-port adds is recorded in vuswitchd's state file
                   (--state-file, default /run/vuswitch/ports.json) and added again when
                   vuswitchd restarts (not after a reboot); show ports lists it as runtime
  del-port NAME    remove a port now: a connected front-end is disconnected (its rings
                   stop; its memory is unmapped once no buffer it lent is in flight), the
                   port's learned MACs and its metric series go, and it leaves the state
                   file; other ports are untouched
  reload           read vuswitchd's command line and --config file again: ports added to
                   the file are added, ports gone from it (or changed) removed (and added
                   again as they are now), the others left alone; ports added with
                   add-port are not the file's and stay. Other options need a restart
                   (listed). SIGHUP does the same

Options:
  --control PATH   management socket of vuswitchd (default /run/vuswitch/vuswitchd.ctl)
  --json           print the daemon's JSON answer as it is (for scripts)
  -h, --help       print this help

Exit status:
  0  done
  1  the daemon answered with an error (printed as "vuswitchctl: CODE: message")
  2  usage error: unknown command or option, bad argument (nothing was sent)
  3  cannot reach the daemon (not running, wrong --control, no permission) or no valid
     answer from it
)";

// What to do when the daemon cannot be reached, after the client's own message.
std::string unreachable_hint(const vusw::Error& error)
{
    if (std::string_view(error.reason) == vusw::control_client_error::no_permission)
        return " (the control socket admits its owner and its group: run as root or as a member of vuswitchd's "
               "--ctl-socket-group)";
    if (std::string_view(error.reason) == vusw::control_client_error::not_running)
        return " (is it running? use --control PATH)";
    return "";
}

int usage_error(const std::string& why)
{
    fmt::print(stderr, "vuswitchctl: {}\n\n{}", why, kUsage);
    return kUsageError;
}

std::string drops_text(const nlohmann::json& drops)
{
    std::string out;
    for (const auto& [reason, n] : drops.items())
        out += fmt::format("{}{}={}", out.empty() ? "" : ",", reason, n.get<uint64_t>());
    return out.empty() ? "-" : out;
}

std::string joined(const nlohmann::json& names)
{
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : " ") + n.get<std::string>();
    return out.empty() ? "-" : out;
}

// What the front-end negotiated, and its queue pairs: "0:256/256" is pair 0 with a
// 256-entry RX and TX ring, "*" marks a ring that is not enabled.
void print_negotiated(const nlohmann::json& p)
{
    if (!p.contains("features"))
        return;
    std::string queues;
    for (const auto& q : p.at("queues")) {
        const auto ring = [](const nlohmann::json& r) {
            return fmt::format("{}{}", r.at("size").get<unsigned>(), r.at("enabled").get<bool>() ? "" : "*");
        };
        const nlohmann::json& pmd = q.value("pmd", nlohmann::json());
        queues += fmt::format("{}{}:{}/{}@pmd{}", queues.empty() ? "" : " ", q.at("pair").get<unsigned>(),
                              ring(q.at("rx")), ring(q.at("tx")), pmd.is_null() ? "-" : std::to_string(pmd.get<unsigned>()));
    }
    const nlohmann::json& mtu = p.value("frontend_mtu", nlohmann::json());
    fmt::print("  features: {}\n  protocol features: {}\n  rings: {}, front-end mtu {}, queue pairs (rx/tx size) {}\n",
               joined(p.at("features")), joined(p.at("protocol_features")), p.at("ring_type").get<std::string>(),
               mtu.is_null() ? std::string("-") : std::to_string(mtu.get<unsigned>()), queues.empty() ? "-" : queues);
}

// "access VLAN 10, MTU 1500 (default)" or "trunk VLANs 10,20 (native 0 untagged), MTU
// 9000 (config)": the MTU the switch enforces and where it comes from (config,
// front-end or default).
std::string vlan_text(const nlohmann::json& p)
{
    if (!p.contains("vlan_mode"))
        return "-";
    const unsigned vlan = p.at("vlan").get<unsigned>();
    const std::string mtu = fmt::format("MTU {} ({})", p.at("mtu").get<unsigned>(), p.value("mtu_source", "?"));
    if (p.at("vlan_mode") == "trunk")
        return fmt::format("trunk VLANs {} (native {} untagged), {}", p.at("trunks").get<std::string>(), vlan, mtu);
    return fmt::format("access VLAN {}, {}", vlan, mtu);
}

// A tunnel: its VNI or VNI map (each VNI's VLAN and frames), its VTEPs (local with its
// prefix and gateway, if given) and remotes (`via GATEWAY` when off-link; the MAC frames
// to it go to as learned by ARP, `?` until then; frames to and from each, inner MACs
// learned behind each), its ARP work and its underlay NIC's own counts (rx: frames on the
// wire, of any kind; tx: encapsulated frames and ARP).
// "10.97.1.1/24", or "10.97.1.1" without a prefix (every remote on-link).
std::string local_text(const nlohmann::json& v)
{
    const nlohmann::json prefix = v.value("prefix", nlohmann::json());
    return v.at("local").get<std::string>() + (prefix.is_null() ? "" : fmt::format("/{}", prefix.get<unsigned>()));
}

// "via 10.97.1.254, " for a remote behind the gateway; "" for one reached directly.
std::string via_text(const nlohmann::json& remote)
{
    const std::string hop = remote.value("next_hop", "direct");
    return hop == "direct" ? "" : fmt::format("via {}, ", hop);
}

void print_vxlan(const nlohmann::json& p)
{
    const nlohmann::json& v = p.at("vxlan");
    const nlohmann::json& u = v.at("underlay");
    std::string remotes;
    for (const auto& r : v.at("remotes"))
        remotes += fmt::format("{}{} ({}{}; {} frames out, {} in, {} inner MACs)", remotes.empty() ? "" : ", ",
                               r.at("ip").get<std::string>(), via_text(r),
                               r.at("mac").is_null() ? "?" : r.at("mac").get<std::string>(),
                               r.value("encapsulated", uint64_t(0)), r.value("decapsulated", uint64_t(0)),
                               r.value("inner_macs", uint64_t(0)));
    std::string vnis;  // "VNI 42", or "VNIs 5000 (VLAN 10; 3 frames out, 4 in), 5001 (VLAN 20; ...)"
    for (const auto& m : v.value("vni_map", nlohmann::json::array()))
        vnis += fmt::format("{}{} (VLAN {}; {} frames out, {} in)", vnis.empty() ? "VNIs " : ", ",
                            m.at("vni").get<unsigned>(), m.at("vlan").get<unsigned>(),
                            m.value("encapsulated", uint64_t(0)), m.value("decapsulated", uint64_t(0)));
    if (vnis.empty())
        vnis = fmt::format("VNI {}", v.at("vni").get<unsigned>());
    fmt::print("{:<19}{}, local {} ({}) UDP port {}{}, over {}\n", "vxlan:", vnis, local_text(v),
               v.at("local_mac").get<std::string>(), v.at("dstport").get<unsigned>(),
               v.value("gateway", nlohmann::json()).is_null() ? "" : ", gateway " + v.at("gateway").get<std::string>(),
               u.at("name").get<std::string>());
    fmt::print("{:<19}{}\n", "remote VTEPs:", remotes);
    fmt::print("{:<19}{} requests sent, {} replies sent, {} received, {} neighbours learned\n", "arp:",
               v.at("arp_requests_sent").get<uint64_t>(), v.at("arp_replies_sent").get<uint64_t>(),
               v.at("arp_received").get<uint64_t>(), v.value("neighbours_learned", uint64_t(0)));
    fmt::print("{:<19}rx {} packets, {} bytes; tx {} packets, {} bytes; drops {}\n", "underlay:",
               u.at("rx_packets").get<uint64_t>(), u.at("rx_bytes").get<uint64_t>(), u.at("tx_packets").get<uint64_t>(),
               u.at("tx_bytes").get<uint64_t>(), drops_text(u.at("drops")));
}

void print_ports(const nlohmann::json& j)
{
    fmt::print("{:<16} {:<10} {:<8} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", "PORT", "TYPE", "ORIGIN", "STATE", "RX_PKTS",
               "RX_BYTES", "TX_PKTS", "TX_BYTES", "DROPS");
    for (const auto& p : j.at("ports"))
        fmt::print("{:<16} {:<10} {:<8} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", p.at("name").get<std::string>(),
                   p.at("type").get<std::string>(), p.value("origin", "-"), p.at("state").get<std::string>(),
                   p.at("rx_packets").get<uint64_t>(),
                   p.at("rx_bytes").get<uint64_t>(), p.at("tx_packets").get<uint64_t>(), p.at("tx_bytes").get<uint64_t>(),
                   drops_text(p.at("drops")));
    fmt::print("\n");
    for (const auto& p : j.at("ports"))
        fmt::print("{:<16} {}\n", p.at("name").get<std::string>(), vlan_text(p));
    for (const auto& p : j.at("ports")) {
        if (p.contains("vxlan")) {
            fmt::print("\n{} (vxlan: rx = decapsulated, tx = encapsulated)\n", p.at("name").get<std::string>());
            print_vxlan(p);
        }
        if (!p.contains("protocol_errors"))
            continue;
        const uint64_t grace_n = p.value("grace_periods", uint64_t(0));
        const double grace_s = p.value("grace_seconds", 0.0);
        fmt::print("\n{} ({} {}): connections {}, protocol errors {}\n"
                   "  memory: {} regions, table updates {}, RCU grace periods {} (mean {:.3f} ms)\n"
                   "  broken queues {}: {}\n",
                   p.at("name").get<std::string>(), p.at("mode").get<std::string>(), p.at("path").get<std::string>(),
                   p.at("connections").get<uint64_t>(), drops_text(p.at("protocol_errors")),
                   p.at("mem_regions").get<uint64_t>(), drops_text(p.value("mem_updates", nlohmann::json::object())),
                   grace_n, grace_n > 0 ? 1e3 * grace_s / double(grace_n) : 0.0, p.at("broken_queues").get<uint64_t>(),
                   drops_text(p.value("broken", nlohmann::json::object())));
        print_negotiated(p);
        if (const auto& log = p.value("dirty_log", nlohmann::json::object()); log.value("enabled", false) ||
                                                                            log.value("pages", uint64_t(0)) != 0)
            fmt::print("  dirty log (migration): {}, {} KiB, {} pages marked, {} outside the log\n",
                       log.value("enabled", false) ? "on" : "off", log.value("size", uint64_t(0)) >> 10,
                       log.value("pages", uint64_t(0)), log.value("missed", uint64_t(0)));
    }
}

void print_pmd_ports(const nlohmann::json& pmd)
{
    if (!pmd.contains("ports"))
        return;
    for (const auto& q : pmd.at("ports")) {
        std::string queues;
        for (const auto& pair : q.value("queues", nlohmann::json::array()))
            queues += (queues.empty() ? "" : ",") + std::to_string(pair.get<unsigned>());
        fmt::print("       port {:<16} load {:>5.1f}%  queues {}{}\n", q.at("name").get<std::string>(),
                   q.value("load_pct", 0.0), queues.empty() ? "-" : queues, q.value("pinned", false) ? "  (pinned)" : "");
    }
    if (pmd.at("ports").empty())
        fmt::print("       (no ports)\n");
}

// "0:120 1:3 <=4:10 ... >64:0": turns by packets moved (bucket upper bounds).
std::string per_turn_text(const nlohmann::json& h)
{
    const auto& le = h.at("le");
    const auto& turns = h.at("turns");
    std::string out;
    for (std::size_t b = 0; b < turns.size(); ++b) {
        const std::string bound = b < le.size() ? (b > 0 && le[b].get<unsigned>() > le[b - 1].get<unsigned>() + 1 ? "<=" : "") +
                                                      std::to_string(le[b].get<unsigned>())
                                                : ">" + std::to_string(le.back().get<unsigned>());
        out += fmt::format("{}{}:{}", out.empty() ? "" : " ", bound, turns[b].get<uint64_t>());
    }
    return out;
}

void print_pmd(const nlohmann::json& j)
{
    fmt::print("{:<4} {:<6} {:>16} {:>16} {:>7} {:>14} {:>10} {:>12} {:>11}\n", "PMD", "LCORE", "BUSY_CYCLES",
               "IDLE_CYCLES", "BUSY%", "PACKETS", "CYC/PKT", "LONGEST_US", "TURNS>1MS");
    for (const auto& p : j.at("pmds")) {
        const double busy = p.at("busy_cycles").get<double>(), idle = p.at("idle_cycles").get<double>();
        const double hz = p.value("tsc_hz", 0.0);
        const double longest_us = hz > 0 ? 1e6 * p.value("longest_iteration_cycles", 0.0) / hz : 0.0;
        const nlohmann::json& cpp = p.value("cycles_per_packet", nlohmann::json());
        fmt::print("{:<4} {:<6} {:>16} {:>16} {:>6.1f}% {:>14} {:>10} {:>12.1f} {:>11}\n", p.at("pmd").get<unsigned>(),
                   p.at("lcore").get<unsigned>(), p.at("busy_cycles").get<uint64_t>(), p.at("idle_cycles").get<uint64_t>(),
                   busy + idle > 0 ? 100 * busy / (busy + idle) : 0.0, p.at("packets").get<uint64_t>(),
                   cpp.is_number() ? fmt::format("{:.1f}", cpp.get<double>()) : std::string("-"), longest_us,
                   p.value("iterations_over_1ms", uint64_t{0}));
        if (p.contains("packets_per_turn"))
            fmt::print("       packets per turn: {}\n", per_turn_text(p.at("packets_per_turn")));
        print_pmd_ports(p);
    }
    if (j.contains("load_window_seconds"))
        fmt::print("\nload: share of the PMD's cycles over the last {} s; queue moves since start: {}\n",
                   j.at("load_window_seconds").get<unsigned>(), j.value("port_moves", uint64_t{0}));
    if (j.contains("counters_since"))
        fmt::print("counters since {} (clear stats)\n", j.at("counters_since").get<std::string>());
}

void print_rebalance(const nlohmann::json& j)
{
    for (const auto& m : j.at("moves"))
        fmt::print("moved {} queue {} from PMD {} to PMD {}\n", m.at("port").get<std::string>(),
                   m.value("queue", 0u), m.at("from").get<unsigned>(), m.at("to").get<unsigned>());
    fmt::print("{}load imbalance {} -> {} cycles (busiest minus idlest PMD, last 10 s)\n",
               j.at("moves").empty() ? "no queue moved (not worth it); " : "", j.value("imbalance_before", uint64_t{0}),
               j.value(j.at("moves").empty() ? "imbalance_before" : "imbalance_after", uint64_t{0}));
}

void print_pin(const nlohmann::json& j)
{
    if (!j.value("pinned", false))
        fmt::print("{} unpinned\n", j.at("port").get<std::string>());
    else if (j.at("from") == j.at("to"))
        fmt::print("{} pinned to PMD {}\n", j.at("port").get<std::string>(), j.at("to").get<unsigned>());
    else
        fmt::print("{} pinned to PMD {} (moved from PMD {})\n", j.at("port").get<std::string>(), j.at("to").get<unsigned>(),
                   j.at("from").get<unsigned>());
}

void print_fdb(const nlohmann::json& j)
{
    fmt::print("{:<19} {:>5} {:<16} {:>6}\n", "MAC", "VLAN", "PORT", "AGE_S");
    for (const auto& e : j.at("fdb")) {
        const std::string hex = e.at("mac").get<std::string>();
        fmt::print("{}:{}:{}:{}:{}:{}  {:>5} {:<16} {:>6}\n", hex.substr(0, 2), hex.substr(2, 2), hex.substr(4, 2),
                   hex.substr(6, 2), hex.substr(8, 2), hex.substr(10, 2), e.at("vlan").get<unsigned>(),
                   e.at("port").get<std::string>(), e.at("age").get<unsigned>());
    }
}


std::string value_text(const nlohmann::json& v)
{
    return v.is_null() ? "-" : v.is_string() ? v.get<std::string>() : v.dump();
}

// One ring of a queue pair: "rx enabled size 256 avail 17 used 17".
std::string ring_text(const char* side, const nlohmann::json& r)
{
    return fmt::format("{} {} size {} avail {} used {}", side, r.value("state", "?"), r.value("size", 0u),
                       value_text(r.value("last_avail", nlohmann::json())), value_text(r.value("used", nlohmann::json())));
}

void print_port_vhost(const nlohmann::json& p)
{
    fmt::print("{:<19}{} {}, {} connection(s)\n", "socket:", p.at("mode").get<std::string>(),
               p.at("path").get<std::string>(), p.at("connections").get<uint64_t>());
    fmt::print("{:<19}{} ({})\n", "features:", joined(p.at("features")), p.value("features_bits", "0x0"));
    fmt::print("{:<19}{}\n", "protocol features:", joined(p.at("protocol_features")));
    const nlohmann::json& fmtu = p.value("frontend_mtu", nlohmann::json());
    fmt::print("{:<19}{}, front-end MTU {}\n", "rings:", p.at("ring_type").get<std::string>(), value_text(fmtu));
    for (const auto& q : p.at("queues"))
        fmt::print("  pair {} on pmd {}: {} frames from it, {} to it\n    {}\n    {}\n", q.at("pair").get<unsigned>(),
                   value_text(q.value("pmd", nlohmann::json())), q.value("rx_packets", uint64_t{0}),
                   q.value("tx_packets", uint64_t{0}), ring_text("rx", q.at("rx")), ring_text("tx", q.at("tx")));
    fmt::print("{:<19}{} regions, {} DMA-registered; table updates {}; RCU grace periods {}\n", "memory:",
               p.at("mem_regions").get<uint64_t>(), p.value("mem_regions_dma", uint64_t{0}),
               drops_text(p.value("mem_updates", nlohmann::json::object())), p.value("grace_periods", uint64_t{0}));
    for (const auto& r : p.value("memory_regions", nlohmann::json::array()))
        fmt::print("  gpa {} size {} uva {}{}\n", r.at("gpa").get<std::string>(), r.at("size").get<uint64_t>(),
                   r.at("uva").get<std::string>(), r.value("dma", false) ? "  dma" : "");
    fmt::print("{:<19}{}\n", "messages:", drops_text(p.value("messages", nlohmann::json::object())));
    fmt::print("{:<19}{} ({} queue events)\n", "broken queues:", drops_text(p.value("broken", nlohmann::json::object())),
               p.value("broken_queues", uint64_t{0}));
    fmt::print("{:<19}{}\n", "protocol errors:", drops_text(p.at("protocol_errors")));
    for (const auto& e : p.value("last_errors", nlohmann::json::array()))
        fmt::print("  {} {}: {}\n", e.at("time").get<std::string>(), e.at("reason").get<std::string>(),
                   e.at("detail").get<std::string>());
    const auto& log = p.value("dirty_log", nlohmann::json::object());
    fmt::print("{:<19}{}, {} KiB, {} pages marked, {} outside the log\n", "dirty log:",
               log.value("enabled", false) ? "on" : "off", log.value("size", uint64_t(0)) >> 10,
               log.value("pages", uint64_t(0)), log.value("missed", uint64_t(0)));
}

void print_port(const nlohmann::json& j)
{
    const nlohmann::json& p = j.at("port");
    fmt::print("{} ({}): {}, {}\n", p.at("name").get<std::string>(), p.at("type").get<std::string>(),
               p.at("state").get<std::string>(), vlan_text(p));
    if (p.contains("origin"))  // daemons before the state file do not say
        fmt::print("{:<19}{}\n", "origin:", p.at("origin") == "runtime" ? "runtime (add-port; restored when vuswitchd restarts)"
                                                                         : "config");
    fmt::print("{:<19}{} packets, {} bytes ({} zero-copy)\n", "rx (from port):", p.at("rx_packets").get<uint64_t>(),
               p.at("rx_bytes").get<uint64_t>(), p.value("rx_zero_copy", uint64_t{0}));
    fmt::print("{:<19}{} packets, {} bytes\n", "tx (to port):", p.at("tx_packets").get<uint64_t>(),
               p.at("tx_bytes").get<uint64_t>());
    fmt::print("{:<19}{}\n", "drops:", drops_text(p.at("drops")));
    if (p.contains("features"))
        print_port_vhost(p);
    if (p.contains("vxlan"))
        print_vxlan(p);
    if (p.contains("counters_since"))
        fmt::print("counters since {} (clear stats)\n", p.at("counters_since").get<std::string>());
}

// The JSON field of a config option: "ctl-socket-mode" -> "ctl_socket_mode".
std::string field_of(std::string key)
{
    std::replace(key.begin(), key.end(), '-', '_');
    return key;
}

// The effective configuration as a --config file would say it.
void print_config(const nlohmann::json& j)
{
    const nlohmann::json& c = j.at("config");
    for (const auto& p : c.at("ports")) {
        std::string options = "|name=" + p.at("name").get<std::string>();
        if (!p.at("mtu").is_null())
            options += fmt::format("|mtu={}", p.at("mtu").get<unsigned>());
        if (p.at("vlan_mode") == "trunk")
            options += fmt::format("|vlan-mode=trunk|trunks={}", p.at("trunks").get<std::string>());
        if (p.at("vlan").get<unsigned>() != 0)
            options += fmt::format("|vlan={}", p.at("vlan").get<unsigned>());
        fmt::print("{} = {}{}\n", p.at("flag").get<std::string>(), p.at("target").get<std::string>(), options);
    }
    if (c.value("embedded_default_ports", false))
        fmt::print("# (the ports above are the embedded default: no port was configured)\n");
    for (const auto& [port, pmd] : c.at("pins").items())
        fmt::print("pin = {}={}\n", port, pmd.get<unsigned>());
    for (const char* key : {"lcores", "rebalance-interval", "rebalance-threshold", "zero-copy-min", "metrics", "control",
                            "run-dir", "file-prefix", "memory", "log-level"})
        fmt::print("{} = {}\n", key, value_text(c.at(field_of(key))));
    // Set only in some configurations (and absent from older daemons' replies).
    for (const char* key : {"state-file", "mbufs", "huge-dir", "user", "group", "socket-mode", "socket-group",
                            "ctl-socket-mode", "ctl-socket-group"})
        if (const std::string field = field_of(key); c.contains(field) && !c.at(field).is_null() && c.at(field) != "")
            fmt::print("{} = {}\n", key, value_text(c.at(field)));
    for (const char* flag : {"no-huge", "debug-dirty-log-always", "debug-no-dirty-log"})
        if (c.value(field_of(flag), false))
            fmt::print("{} = true\n", flag);
}

void print_cleared(const nlohmann::json& j)
{
    fmt::print("statistics cleared: the views count from {} (Prometheus counters go on)\n",
               j.at("counters_since").get<std::string>());
}

void print_log_level(const nlohmann::json& j)
{
    fmt::print("log level {} (was {})\n", j.at("level").get<std::string>(), j.at("previous").get<std::string>());
}

void print_version(const nlohmann::json& j)
{
    fmt::print("vuswitchctl {} (control protocol {})\n{} {} (control protocol {})\n", VUSW_VERSION, kProtocolVersion,
               j.at("daemon").get<std::string>(), j.at("daemon_version").get<std::string>(),
               j.at("protocol_version").get<unsigned>());
    if (j.contains("control_socket")) {  // daemons before it do not say
        const nlohmann::json& c = j.at("control_socket");
        const nlohmann::json& d = c.at("dropped");
        fmt::print("control socket: {} open; dropped: {} timeout, {} too_long, {} busy\n", c.at("open").get<uint64_t>(),
                   d.value("timeout", uint64_t(0)), d.value("too_long", uint64_t(0)), d.value("busy", uint64_t(0)));
    }
}

// add-port TYPE's options that take a value, and the request fields they fill.
std::vector<std::pair<std::string_view, const char*>> add_port_options(std::string_view type)
{
    std::vector<std::pair<std::string_view, const char*>> options = {
        {"--mtu", "mtu"}, {"--vlan", "vlan"}, {"--vlan-mode", "vlan_mode"}, {"--trunks", "trunks"}};
    if (type == "vxlan") {  // its name is the first field of its SPEC
        options.insert(options.begin(), {{"--underlay", "underlay"}, {"--underlay-mtu", "underlay_mtu"}});
        return options;
    }
    options.insert(options.begin(), {"--name", "name"});
    return options;
}

// add-port's request: TARGET, then --client and the port options.
nlohmann::json add_port_request(const char* type, const std::vector<std::string>& a, std::string& error)
{
    nlohmann::json r{{"cmd", "add_port"}, {"type", type}, {"target", a[0]}};
    const auto valued = add_port_options(type);
    for (std::size_t i = 1; i < a.size(); ++i) {
        const std::string& opt = a[i];
        if (opt == "--client" && std::string_view(type) == "vhost-user") {
            r["client"] = true;
            continue;
        }
        const auto known = std::find_if(valued.begin(), valued.end(), [&](const auto& k) { return k.first == opt; });
        if (known == valued.end()) {
            std::vector<std::string_view> names;
            for (const auto& k : valued)
                names.push_back(k.first);
            error = fmt::format("add-port {}: unknown option `{}` (options: {}{})", type, opt,
                                std::string_view(type) == "vhost-user" ? "--client, " : "", fmt::join(names, ", "));
            return nlohmann::json();
        }
        if (++i == a.size()) {
            error = fmt::format("add-port {}: {} needs a value", type, opt);
            return nlohmann::json();
        }
        r[known->second] = a[i];  // the daemon checks values as it checks the command line's
    }
    return r;
}

void print_added(const nlohmann::json& j)
{
    const nlohmann::json& p = j.at("port");
    fmt::print("port {} ({}) added on PMD {}: {}\n", p.at("name").get<std::string>(), p.at("type").get<std::string>(),
               p.at("pmd").dump(), p.at("state").get<std::string>());
}

void print_reload(const nlohmann::json& j)
{
    auto list = [&](const char* key) {
        const auto names = j.at(key).get<std::vector<std::string>>();
        return names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "));
    };
    fmt::print("added: {}\nremoved: {}\nkept: {}\n", list("added"), list("removed"), list("kept"));
    for (const auto& f : j.at("failed"))
        fmt::print("failed: {}\n", f.get<std::string>());
    if (!j.at("needs_restart").empty())
        fmt::print("changed, needs a restart: {}\n", list("needs_restart"));
}

// A command: its words, how many arguments follow them, the request they make (empty
// with `error` set for a bad argument) and how its reply is printed.
struct CtlVerb {
    std::vector<std::string_view> words;
    std::size_t args;
    std::string_view synopsis;
    std::function<nlohmann::json(const std::vector<std::string>& args, std::string& error)> request;
    std::function<void(const nlohmann::json& reply)> print;
    bool options = false;  // `args` or more: the rest are --OPTION [VALUE]
};

nlohmann::json simple(std::string_view cmd)
{
    return {{"cmd", std::string(cmd)}};
}

const std::vector<CtlVerb>& verbs()
{
    static const std::vector<CtlVerb> table = {
        {{"show", "ports"}, 0, "show ports", [](auto&, auto&) { return simple("show_ports"); }, print_ports},
        {{"show", "port"}, 1, "show port NAME",
         [](const auto& a, auto&) { return nlohmann::json{{"cmd", "show_port"}, {"port", a[0]}}; }, print_port},
        {{"show", "pmd"}, 0, "show pmd", [](auto&, auto&) { return simple("show_pmd"); }, print_pmd},
        {{"show", "fdb"}, 0, "show fdb", [](auto&, auto&) { return simple("show_fdb"); }, print_fdb},
        {{"show", "config"}, 0, "show config", [](auto&, auto&) { return simple("show_config"); }, print_config},
        {{"clear", "stats"}, 0, "clear stats", [](auto&, auto&) { return simple("clear_stats"); }, print_cleared},
        {{"set", "log-level"}, 1, "set log-level LEVEL",
         [](const auto& a, std::string& error) {
             if (a[0] != "error" && a[0] != "warn" && a[0] != "info" && a[0] != "debug") {
                 error = fmt::format("set log-level {}: LEVEL is one of error, warn, info, debug", a[0]);
                 return nlohmann::json();
             }
             return nlohmann::json{{"cmd", "set_log_level"}, {"level", a[0]}};
         },
         print_log_level},
        {{"version"}, 0, "version", [](auto&, auto&) { return simple("version"); }, print_version},
        {{"rebalance"}, 0, "rebalance", [](auto&, auto&) { return simple("rebalance"); }, print_rebalance},
        {{"pin"}, 2, "pin PORT PMD",
         [](const auto& a, std::string& error) {
             if (a[1].empty() || a[1].size() > 4 || a[1].find_first_not_of("0123456789") != std::string::npos) {
                 error = fmt::format("pin {} {}: PMD must be a PMD core number (0, 1, ...)", a[0], a[1]);
                 return nlohmann::json();
             }
             return nlohmann::json{{"cmd", "pin"}, {"port", a[0]}, {"pmd", std::stoul(a[1])}};
         },
         print_pin},
        {{"unpin"}, 1, "unpin PORT",
         [](const auto& a, auto&) { return nlohmann::json{{"cmd", "pin"}, {"port", a[0]}, {"pmd", nullptr}}; },
         print_pin},
        {{"add-port", "vhost-user"}, 1, "add-port vhost-user PATH [--client] [--name NAME] [--mtu BYTES] [--vlan VID] "
                                        "[--vlan-mode MODE] [--trunks LIST]",
         [](const auto& a, std::string& error) { return add_port_request("vhost-user", a, error); }, print_added, true},
        {{"add-port", "nic"}, 1, "add-port nic DEVARGS [--name NAME] [--mtu BYTES] [--vlan VID] [--vlan-mode MODE] "
                                 "[--trunks LIST]",
         [](const auto& a, std::string& error) { return add_port_request("nic", a, error); }, print_added, true},
        {{"add-port", "vxlan"}, 1, "add-port vxlan NAME,local=IP[/PREFIX],remote=IP[,remote=IP...][,gateway=IP],vni=N[,dstport=PORT],"
                                   "underlay=NIC [--underlay DEVARGS] [--underlay-mtu BYTES] [--mtu BYTES] [--vlan VID] "
                                   "[--vlan-mode MODE] [--trunks LIST]",
         [](const auto& a, std::string& error) { return add_port_request("vxlan", a, error); }, print_added, true},
        {{"del-port"}, 1, "del-port NAME",
         [](const auto& a, auto&) { return nlohmann::json{{"cmd", "del_port"}, {"port", a[0]}}; },
         [](const nlohmann::json& j) { fmt::print("port {} removed\n", j.at("port").get<std::string>()); }},
        {{"reload"}, 0, "reload", [](auto&, auto&) { return simple("reload"); }, print_reload},
    };
    return table;
}

// The verb the command words name, with its arguments; nullptr (and `error`) if none.
const CtlVerb* verb_of(const std::vector<std::string>& w, std::vector<std::string>& args, std::string& error)
{
    for (const CtlVerb& v : verbs()) {
        if (w.size() < v.words.size() || !std::equal(v.words.begin(), v.words.end(), w.begin()))
            continue;
        if (v.options ? w.size() < v.words.size() + v.args : w.size() != v.words.size() + v.args) {
            error = fmt::format("`{}` takes {} argument{}: {}", fmt::join(v.words, " "), v.args, v.args == 1 ? "" : "s",
                                v.synopsis);
            return nullptr;
        }
        args.assign(w.begin() + std::ptrdiff_t(v.words.size()), w.end());
        return &v;
    }
    std::vector<std::string_view> all, same_start;
    for (const CtlVerb& v : verbs()) {
        all.push_back(v.synopsis);
        if (!w.empty() && v.words.size() > 1 && v.words[0] == w[0])
            same_start.push_back(v.synopsis);
    }
    if (!same_start.empty() && (w.size() == 1 || !std::any_of(verbs().begin(), verbs().end(), [&](const CtlVerb& v) {
                                     return v.words.size() > 1 && v.words[1] == w[1];
                                 }))) {
        error = fmt::format("`{}` needs one of: {}", w[0], fmt::join(same_start, " | "));
        return nullptr;
    }
    error = w.empty() ? fmt::format("expected a command: {}", fmt::join(all, " | "))
                      : fmt::format("unknown command `{}`; commands: {}", fmt::join(w, " "), fmt::join(all, " | "));
    return nullptr;
}

// An error reply's text: "CODE: message" (protocol 1), or the text of an older daemon.
std::string error_text(const nlohmann::json& error)
{
    if (error.is_object())
        return fmt::format("{}: {}", error.value("code", "error"), error.value("message", error.dump()));
    return error.is_string() ? error.get<std::string>() : error.dump();
}

}  // namespace

int main(int argc, char** argv)
{
    std::string control = "/run/vuswitch/vuswitchd.ctl";
    bool json = false;
    std::vector<std::string> words;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            fmt::print("{}", kUsage);
            return kOk;
        } else if (a == "--json") {
            json = true;
        } else if (a == "--control") {
            if (++i == argc)
                return usage_error("--control needs a PATH");
            control = argv[i];
        } else if (a.rfind("--control=", 0) == 0) {
            control = a.substr(10);
        } else if (a.rfind("-", 0) == 0 && a.size() > 1 && words.empty()) {
            return usage_error("unknown option " + a);  // after the command words: the command's own options
        } else {
            words.push_back(a);
        }
    }
    std::string error;
    std::vector<std::string> args;
    const CtlVerb* verb = verb_of(words, args, error);
    if (verb == nullptr)
        return usage_error(error);
    const nlohmann::json request = verb->request(args, error);
    if (request.is_null())
        return usage_error(error);
    // Arguments that are not UTF-8 (a port name typed in another encoding) go as U+FFFD.
    const std::string line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const auto text = vusw::ask(control, line);
    const auto reply_or = text ? vusw::parse_reply(control, *text) : std::unexpected(text.error());
    if (!reply_or) {
        fmt::print(stderr, "vuswitchctl: {}{}\n", reply_or.error().detail, unreachable_hint(reply_or.error()));
        return kUnreachable;
    }
    const nlohmann::json& reply = *reply_or;
    if (reply.value("version", 0u) > kProtocolVersion)
        fmt::print(stderr, "vuswitchctl: note: the daemon speaks control protocol {}, this vuswitchctl {}\n",
                   reply.value("version", 0u), kProtocolVersion);
    if (reply.contains("error")) {
        if (json)
            fmt::print("{}\n", reply.dump(2));
        fmt::print(stderr, "vuswitchctl: {}\n", error_text(reply.at("error")));
        return kDaemonError;
    }
    try {
        if (json)
            fmt::print("{}\n", reply.dump(2));
        else
            verb->print(reply);
    } catch (const nlohmann::json::exception& e) {
        fmt::print(stderr, "vuswitchctl: unexpected answer from vuswitchd ({}); --json prints it as it is\n", e.what());
        return kUnreachable;
    }
    return kOk;
}
