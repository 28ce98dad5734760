// vuswitchctl: ask a running vuswitchd about its ports, cores and MAC table; place ports on cores.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace {

constexpr const char* kUsage = R"(Usage: vuswitchctl [--control PATH] [--json] COMMAND

Commands:
  show ports       ports with state, counters and drops by reason, VLAN membership and MTU
                   (the MTU the switch enforces, and where it comes from: config = the
                   port's mtu=, front-end = its NET_SET_MTU, default = 1500); for
                   vhost-user ports also the negotiated features, ring type
                   (split|packed), the front-end's MTU and queue pairs (ring sizes, the PMD
                   polling each, frames per pair in the JSON)
  show pmd         PMD cores: busy/idle cycles, packets, longest loop turn, turns over 1 ms,
                   and the port queues each polls (a vhost-user queue pair or a NIC queue is
                   the unit a core polls; one port's queues may be on different cores) with
                   their load (share of the core's cycles over the last 10 s) and whether
                   their port is pinned
  show fdb         learned MAC addresses
  rebalance        place the queues of unpinned ports on PMD cores by measured load now
                   (queues move only if that cuts the load imbalance by the threshold,
                   --rebalance-threshold)
  pin PORT PMD     poll all of PORT's queues on PMD core number PMD from now on (moves them
                   now; no rebalance moves them again)
  unpin PORT       let rebalancing move PORT again

Options:
  --control PATH   management socket of vuswitchd (default /run/vuswitch/vuswitchd.ctl)
  --json           print the daemon's JSON answer as it is (for scripts)
  -h, --help       print this help
)";

int usage_error(const std::string& why)
{
    fmt::print(stderr, "vuswitchctl: {}\n\n{}", why, kUsage);
    return 2;
}

// Sends one request line and returns the reply line.
std::string ask(const std::string& path, const std::string& request)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        throw std::runtime_error("control socket path too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(fd);
        throw std::runtime_error(fmt::format("cannot reach vuswitchd at {}: {} (is it running? use --control PATH)", path,
                                             strerror(errno)));
    }
    const std::string line = request + "\n";
    (void)send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    std::string reply;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        reply.append(buf, std::size_t(n));
    close(fd);
    return reply;
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

void print_ports(const nlohmann::json& j)
{
    fmt::print("{:<16} {:<10} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", "PORT", "TYPE", "STATE", "RX_PKTS", "RX_BYTES",
               "TX_PKTS", "TX_BYTES", "DROPS");
    for (const auto& p : j.at("ports"))
        fmt::print("{:<16} {:<10} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", p.at("name").get<std::string>(),
                   p.at("type").get<std::string>(), p.at("state").get<std::string>(), p.at("rx_packets").get<uint64_t>(),
                   p.at("rx_bytes").get<uint64_t>(), p.at("tx_packets").get<uint64_t>(), p.at("tx_bytes").get<uint64_t>(),
                   drops_text(p.at("drops")));
    fmt::print("\n");
    for (const auto& p : j.at("ports"))
        fmt::print("{:<16} {}\n", p.at("name").get<std::string>(), vlan_text(p));
    for (const auto& p : j.at("ports")) {
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

void print_pmd(const nlohmann::json& j)
{
    fmt::print("{:<4} {:<6} {:>16} {:>16} {:>7} {:>14} {:>12} {:>11}\n", "PMD", "LCORE", "BUSY_CYCLES", "IDLE_CYCLES",
               "BUSY%", "PACKETS", "LONGEST_US", "TURNS>1MS");
    for (const auto& p : j.at("pmds")) {
        const double busy = p.at("busy_cycles").get<double>(), idle = p.at("idle_cycles").get<double>();
        const double hz = p.value("tsc_hz", 0.0);
        const double longest_us = hz > 0 ? 1e6 * p.value("longest_iteration_cycles", 0.0) / hz : 0.0;
        fmt::print("{:<4} {:<6} {:>16} {:>16} {:>6.1f}% {:>14} {:>12.1f} {:>11}\n", p.at("pmd").get<unsigned>(),
                   p.at("lcore").get<unsigned>(), p.at("busy_cycles").get<uint64_t>(), p.at("idle_cycles").get<uint64_t>(),
                   busy + idle > 0 ? 100 * busy / (busy + idle) : 0.0, p.at("packets").get<uint64_t>(), longest_us,
                   p.value("iterations_over_1ms", uint64_t{0}));
        print_pmd_ports(p);
    }
    if (j.contains("load_window_seconds"))
        fmt::print("\nload: share of the PMD's cycles over the last {} s; queue moves since start: {}\n",
                   j.at("load_window_seconds").get<unsigned>(), j.value("port_moves", uint64_t{0}));
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

// The request for the command words, or an empty object if they make no command.
nlohmann::json request_of(const std::vector<std::string>& w, std::string& error)
{
    if (w.size() == 2 && w[0] == "show" && (w[1] == "ports" || w[1] == "pmd" || w[1] == "fdb"))
        return {{"cmd", "show_" + w[1]}};
    if (w.size() == 1 && w[0] == "rebalance")
        return {{"cmd", "rebalance"}};
    if (w.size() == 2 && w[0] == "unpin")
        return {{"cmd", "pin"}, {"port", w[1]}, {"pmd", nullptr}};
    if (w.size() == 3 && w[0] == "pin") {
        if (w[2].empty() || w[2].size() > 4 || w[2].find_first_not_of("0123456789") != std::string::npos) {
            error = fmt::format("pin {} {}: PMD must be a PMD core number (0, 1, ...)", w[1], w[2]);
            return {};
        }
        return {{"cmd", "pin"}, {"port", w[1]}, {"pmd", std::stoul(w[2])}};
    }
    error = "expected a command: show ports | show pmd | show fdb | rebalance | pin PORT PMD | unpin PORT";
    return {};
}

void print_fdb(const nlohmann::json& j)
{
    fmt::print("{:<18} {:>5} {:<16} {:>6}\n", "MAC", "VLAN", "PORT", "AGE_S");
    for (const auto& e : j.at("fdb")) {
        const std::string hex = e.at("mac").get<std::string>();
        fmt::print("{}:{}:{}:{}:{}:{}  {:>5} {:<16} {:>6}\n", hex.substr(0, 2), hex.substr(2, 2), hex.substr(4, 2),
                   hex.substr(6, 2), hex.substr(8, 2), hex.substr(10, 2), e.at("vlan").get<unsigned>(),
                   e.at("port").get<std::string>(), e.at("age").get<unsigned>());
    }
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
            return 0;
        } else if (a == "--json") {
            json = true;
        } else if (a == "--control") {
            if (++i == argc)
                return usage_error("--control needs a PATH");
            control = argv[i];
        } else if (a.rfind("--control=", 0) == 0) {
            control = a.substr(10);
        } else if (a.rfind("-", 0) == 0) {
            return usage_error("unknown option " + a);
        } else {
            words.push_back(a);
        }
    }
    std::string error;
    const nlohmann::json request = request_of(words, error);
    if (request.empty())
        return usage_error(error);
    try {
        const nlohmann::json reply = nlohmann::json::parse(ask(control, request.dump()));
        if (reply.contains("error")) {
            fmt::print(stderr, "vuswitchctl: {}\n", reply.at("error").get<std::string>());
            return 1;
        }
        const std::string cmd = request.at("cmd").get<std::string>();
        if (json)
            fmt::print("{}\n", reply.dump(2));
        else if (cmd == "show_ports")
            print_ports(reply);
        else if (cmd == "show_pmd")
            print_pmd(reply);
        else if (cmd == "show_fdb")
            print_fdb(reply);
        else if (cmd == "rebalance")
            print_rebalance(reply);
        else
            print_pin(reply);
    } catch (const std::exception& e) {
        fmt::print(stderr, "vuswitchctl: {}\n", e.what());
        return 1;
    }
    return 0;
}
