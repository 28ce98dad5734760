// vuswitchctl: ask a running vuswitchd about its ports, cores and MAC table.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace {

constexpr const char* kUsage = R"(Usage: vuswitchctl [--control PATH] [--json] COMMAND

Commands:
  show ports    ports with state, counters and drops by reason
  show pmd      PMD cores: busy/idle cycles, packets, longest loop turn, turns over 1 ms
  show fdb      learned MAC addresses

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

void print_ports(const nlohmann::json& j)
{
    fmt::print("{:<16} {:<10} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", "PORT", "TYPE", "STATE", "RX_PKTS", "RX_BYTES",
               "TX_PKTS", "TX_BYTES", "DROPS");
    for (const auto& p : j.at("ports"))
        fmt::print("{:<16} {:<10} {:<11} {:>12} {:>14} {:>12} {:>14}  {}\n", p.at("name").get<std::string>(),
                   p.at("type").get<std::string>(), p.at("state").get<std::string>(), p.at("rx_packets").get<uint64_t>(),
                   p.at("rx_bytes").get<uint64_t>(), p.at("tx_packets").get<uint64_t>(), p.at("tx_bytes").get<uint64_t>(),
                   drops_text(p.at("drops")));
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
    }
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
    }
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
    if (words.size() != 2 || words[0] != "show" || (words[1] != "ports" && words[1] != "pmd" && words[1] != "fdb"))
        return usage_error("expected a command: show ports | show pmd | show fdb");
    try {
        const nlohmann::json reply = nlohmann::json::parse(ask(control, nlohmann::json{{"cmd", "show_" + words[1]}}.dump()));
        if (reply.contains("error")) {
            fmt::print(stderr, "vuswitchctl: {}\n", reply.at("error").get<std::string>());
            return 1;
        }
        if (json)
            fmt::print("{}\n", reply.dump(2));
        else if (words[1] == "ports")
            print_ports(reply);
        else if (words[1] == "pmd")
            print_pmd(reply);
        else
            print_fdb(reply);
    } catch (const std::exception& e) {
        fmt::print(stderr, "vuswitchctl: {}\n", e.what());
        return 1;
    }
    return 0;
}
