// Command-line and config-file parsing (Boost.Program_options).
#include "control/config.h"

#include <fstream>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>
#include <fmt/format.h>

namespace po = boost::program_options;

namespace vusw {
namespace {

constexpr const char* kUsage = R"(Usage: vuswitchd [OPTIONS]

A userspace virtual switch: vhost-user guests and DPDK NICs, switched by polling cores.
With no port options it starts the embedded default: two vhost-user server sockets,
RUN_DIR/vhost0.sock and RUN_DIR/vhost1.sock, and no NIC.

Options)";

po::options_description describe()
{
    po::options_description d(kUsage);
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config", po::value<std::string>(), "read options from FILE (`name = value` lines, same names as the flags)")
        ("vhost-user", po::value<std::vector<std::string>>(), "PATH: vhost-user server socket (we listen, the guest's front-end connects); repeatable")
        ("vhost-user-client", po::value<std::vector<std::string>>(), "PATH: vhost-user client socket (the front-end listens; we connect and reconnect with backoff); repeatable")
        ("nic", po::value<std::vector<std::string>>(), "DEVARGS: a DPDK ethdev (net_tap0,iface=x  net_af_packet0,iface=veth0  net_null0  0000:03:00.0); repeatable")
        ("lcores", po::value<std::string>(), "LIST: cores to use, e.g. 0,1 or 0-3: the first runs the control thread, the rest poll (default: 0,1)")
        ("metrics", po::value<std::string>(), "ADDR:PORT for Prometheus /metrics, or `off` (default 127.0.0.1:9750)")
        ("control", po::value<std::string>(), "PATH of the management socket for vuswitchctl (default RUN_DIR/vuswitchd.ctl)")
        ("run-dir", po::value<std::string>(), "DIR for the default sockets (default /run/vuswitch)")
        ("file-prefix", po::value<std::string>(), "DPDK file prefix, unique per DPDK process on the host (default vuswitch)")
        ("memory", po::value<long long>(), "MB of (huge page) memory for packet buffers, 64..65536 (default 256)")
        ("no-huge", po::bool_switch(), "use ordinary memory instead of huge pages (tests, sanitizers)")
        ("log-level", po::value<std::string>(), "error|warn|info|debug (default info)");
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

Status to_config(const po::variables_map& vm, Config& c)
{
    auto list = [&](const char* key) { return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{}; };
    c.vhost_server = list("vhost-user");
    c.vhost_client = list("vhost-user-client");
    c.nics = list("nic");
    if (vm.count("run-dir"))
        c.run_dir = vm["run-dir"].as<std::string>();
    if (vm.count("metrics"))
        c.metrics = vm["metrics"].as<std::string>();
    c.control = vm.count("control") ? vm["control"].as<std::string>() : c.run_dir + "/vuswitchd.ctl";
    if (vm.count("file-prefix"))
        c.file_prefix = vm["file-prefix"].as<std::string>();
    if (vm.count("memory")) {
        const long long mb = vm["memory"].as<long long>();
        if (mb < 64 || mb > 65536)
            return fail("config", fmt::format("--memory {}: expected 64..65536 MB", mb));
        c.memory_mb = unsigned(mb);
    }
    c.no_huge = vm["no-huge"].as<bool>();
    if (vm.count("log-level")) {
        auto level = parse_level(vm["log-level"].as<std::string>());
        if (!level)
            return std::unexpected(level.error());
        c.log_level = *level;
    }
    if (vm.count("lcores")) {
        auto lcores = parse_lcores(vm["lcores"].as<std::string>());
        if (!lcores)
            return std::unexpected(lcores.error());
        c.lcores = *lcores;
    } else {
        c.lcores = default_lcores();
    }
    if (c.lcores.size() < 2)
        return fail("config", "--lcores needs at least two cores: one control core and one PMD core");
    if (c.lcores.size() - 1 > 16)
        return fail("config", "--lcores: at most 16 PMD cores");
    if (c.vhost_server.empty() && c.vhost_client.empty() && c.nics.empty()) {
        c.vhost_server = {c.run_dir + "/vhost0.sock", c.run_dir + "/vhost1.sock"};
        c.used_default_ports = true;
    }
    if (c.metrics != "off" && c.metrics.rfind(':') == std::string::npos)
        return fail("config", fmt::format("--metrics {}: expected ADDR:PORT (e.g. 127.0.0.1:9750) or off", c.metrics));
    return {};
}

}  // namespace

Result<std::vector<unsigned>> parse_lcores(const std::string& list)
{
    std::vector<unsigned> out;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        unsigned lo = 0, hi = 0;
        char dash = 0;
        std::stringstream one(item);
        if (!(one >> lo) || ((one >> dash) && (dash != '-' || !(one >> hi) || hi < lo)) || !one.eof() || lo > 1023 ||
            hi > 1023)
            return fail("config", fmt::format("--lcores {}: `{}` is not a core or a range like 2-3", list, item));
        if (dash == 0)
            hi = lo;
        for (unsigned c = lo; c <= hi; ++c)
            out.push_back(c);
    }
    if (out.empty() || list.back() == ',')
        return fail("config", fmt::format("--lcores `{}`: expected a list like 0,1 or 0-3", list));
    return out;
}

std::string port_name_from_path(const std::string& path)
{
    std::string name = path.substr(path.find_last_of('/') + 1);
    const auto dot = name.find('.');
    return dot == 0 || dot == std::string::npos ? name : name.substr(0, dot);
}

Result<ParsedArgs> parse_args(int argc, const char* const* argv)
{
    const po::options_description desc = describe();
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("config")) {
            const std::string file = vm["config"].as<std::string>();
            std::ifstream in(file);
            if (!in)
                return fail("config", fmt::format("--config {}: cannot open the file", file));
            po::store(po::parse_config_file(in, desc), vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        return fail("config", fmt::format("{} (see vuswitchd --help)", e.what()));
    }
    ParsedArgs parsed;
    if (vm.count("help")) {
        std::stringstream text;
        text << desc << "\nSee vuswitchctl --help for managing a running switch.\n";
        parsed.print = text.str();
        return parsed;
    }
    if (vm.count("version")) {
        parsed.print = "vuswitchd 0.1.0\n";
        return parsed;
    }
    if (auto ok = to_config(vm, parsed.config); !ok)
        return std::unexpected(ok.error());
    return parsed;
}

}  // namespace vusw
