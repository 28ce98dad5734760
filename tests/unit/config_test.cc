// vuswitchd's command line and config file.
#include "control/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

Result<ParsedArgs> parse(std::initializer_list<const char*> args)
{
    std::vector<const char*> argv{"vuswitchd"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_args(int(argv.size()), argv.data());
}

Config config_of(std::initializer_list<const char*> args)
{
    auto r = parse(args);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->print.empty());
    return r->config;
}

// The error of a parse that must fail; its reason must be "config".
std::string error_of(std::initializer_list<const char*> args)
{
    auto r = parse(args);
    REQUIRE_FALSE(r.has_value());
    CHECK(std::string(r.error().reason) == "config");
    CHECK_FALSE(r.error().detail.empty());
    return r.error().detail;
}

// A config file that removes itself.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text)
    {
        char name[] = "/tmp/vusw-config-XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TempFile() { unlink(path.c_str()); }
};

}  // namespace

TEST_CASE("no arguments: the embedded default")
{
    const Config c = config_of({});
    CHECK(c.used_default_ports);
    REQUIRE(c.vhost_server.size() == 2);
    CHECK(c.vhost_server[0] == "/run/vuswitch/vhost0.sock");
    CHECK(c.vhost_server[1] == "/run/vuswitch/vhost1.sock");
    CHECK(c.vhost_client.empty());
    CHECK(c.nics.empty());
    CHECK(c.lcores.size() == 2);
    CHECK(c.metrics == "127.0.0.1:9750");
    CHECK(c.control == "/run/vuswitch/vuswitchd.ctl");
    CHECK(c.run_dir == "/run/vuswitch");
    CHECK(c.file_prefix == "vuswitch");
    CHECK(c.memory_mb == 256);
    CHECK_FALSE(c.no_huge);
    CHECK(c.log_level == LogLevel::info);
}

TEST_CASE("--run-dir moves the default sockets and the control socket")
{
    const Config c = config_of({"--run-dir", "/tmp/x"});
    REQUIRE(c.vhost_server.size() == 2);
    CHECK(c.vhost_server[0] == "/tmp/x/vhost0.sock");
    CHECK(c.control == "/tmp/x/vuswitchd.ctl");
    CHECK(config_of({"--run-dir", "/tmp/x", "--control", "/tmp/c.sock"}).control == "/tmp/c.sock");
}

TEST_CASE("repeatable port flags keep their order; any port option replaces the default")
{
    const Config c = config_of({"--vhost-user", "/tmp/a.sock", "--nic", "net_null0", "--vhost-user", "/tmp/b.sock",
                                "--vhost-user-client", "/tmp/c.sock", "--nic", "net_tap0,iface=x"});
    CHECK_FALSE(c.used_default_ports);
    CHECK(c.vhost_server == std::vector<std::string>{"/tmp/a.sock", "/tmp/b.sock"});
    CHECK(c.vhost_client == std::vector<std::string>{"/tmp/c.sock"});
    CHECK(c.nics == std::vector<std::string>{"net_null0", "net_tap0,iface=x"});

    const Config nic_only = config_of({"--nic", "net_null0"});
    CHECK(nic_only.vhost_server.empty());
    CHECK_FALSE(nic_only.used_default_ports);
    const Config client_only = config_of({"--vhost-user-client", "/tmp/c.sock"});
    CHECK(client_only.vhost_server.empty());
}

TEST_CASE("scalar flags")
{
    const Config c = config_of({"--lcores", "2-4", "--metrics", "0.0.0.0:9999", "--file-prefix", "t1", "--memory",
                                "512", "--no-huge", "--log-level", "debug", "--vhost-user=/tmp/eq.sock"});
    CHECK(c.lcores == std::vector<unsigned>{2, 3, 4});
    CHECK(c.metrics == "0.0.0.0:9999");
    CHECK(c.file_prefix == "t1");
    CHECK(c.memory_mb == 512);
    CHECK(c.no_huge);
    CHECK(c.log_level == LogLevel::debug);
    CHECK(c.vhost_server == std::vector<std::string>{"/tmp/eq.sock"});
    CHECK(config_of({"--metrics", "off"}).metrics == "off");
    CHECK(config_of({"--log-level", "error"}).log_level == LogLevel::error);
    CHECK(config_of({"--log-level", "warn"}).log_level == LogLevel::warn);
}

TEST_CASE("bad values are config errors that name the option")
{
    CHECK(error_of({"--log-level", "loud"}).find("--log-level") != std::string::npos);
    CHECK(error_of({"--metrics", "9750"}).find("--metrics") != std::string::npos);
    CHECK(error_of({"--lcores", "0"}).find("--lcores") != std::string::npos);  // no PMD core
    CHECK(error_of({"--lcores", "0-17"}).find("--lcores") != std::string::npos);  // 17 PMD cores
    CHECK(error_of({"--lcores", "x"}).find("--lcores") != std::string::npos);
    CHECK(error_of({"--memory", "lots"}).find("memory") != std::string::npos);
    CHECK(error_of({"--no-such-flag"}).find("no-such-flag") != std::string::npos);
    CHECK(error_of({"--vhost-user"}).find("vhost-user") != std::string::npos);  // missing value
    CHECK(error_of({"--config", "/nonexistent/vuswitch.conf"}).find("/nonexistent/vuswitch.conf") != std::string::npos);
}

TEST_CASE("--memory rejects a negative number instead of wrapping it")
{
    auto r = parse({"--memory", "-1"});
    CHECK_MESSAGE(!r.has_value(), "--memory -1 gave memory_mb = ", (r ? r->config.memory_mb : 0));
}

TEST_CASE("--lcores 16 PMD cores is the maximum")
{
    CHECK(config_of({"--lcores", "0-16"}).lcores.size() == 17);
}

TEST_CASE("--config FILE: same names, repeated lines, command line wins")
{
    TempFile f("# comment\n"
               "vhost-user = /tmp/f1.sock\n"
               "vhost-user = /tmp/f2.sock\n"
               "nic = net_null0\n"
               "lcores = 0,2-3\n"
               "metrics = off\n"
               "memory = 128\n"
               "no-huge = true\n"
               "log-level = warn\n"
               "file-prefix = fromfile\n");
    const Config c = config_of({"--config", f.path.c_str()});
    CHECK(c.vhost_server == std::vector<std::string>{"/tmp/f1.sock", "/tmp/f2.sock"});
    CHECK(c.nics == std::vector<std::string>{"net_null0"});
    CHECK(c.lcores == std::vector<unsigned>{0, 2, 3});
    CHECK(c.metrics == "off");
    CHECK(c.memory_mb == 128);
    CHECK(c.no_huge);
    CHECK(c.log_level == LogLevel::warn);
    CHECK(c.file_prefix == "fromfile");

    const Config over = config_of({"--config", f.path.c_str(), "--memory", "64", "--log-level", "debug"});
    CHECK(over.memory_mb == 64);
    CHECK(over.log_level == LogLevel::debug);
    CHECK(over.file_prefix == "fromfile");
}

TEST_CASE("--config FILE: bad lines are config errors")
{
    TempFile unknown("no-such-option = 1\n");
    error_of({"--config", unknown.path.c_str()});
    TempFile bad_level("log-level = shouty\n");
    CHECK(error_of({"--config", bad_level.path.c_str()}).find("shouty") != std::string::npos);
    TempFile bad_memory("memory = many\n");
    error_of({"--config", bad_memory.path.c_str()});
}

TEST_CASE("the shipped sample config parses")
{
    const std::string path = std::string(VUSW_SOURCE_DIR) + "/deploy/vuswitch.conf";
    REQUIRE(std::ifstream(path).good());
    const Config c = config_of({"--config", path.c_str()});
    CHECK_FALSE(c.vhost_server.empty());
    CHECK(c.lcores.size() >= 2);
}

TEST_CASE("--help mentions every flag; --version prints the version")
{
    auto help = parse({"--help"});
    REQUIRE(help.has_value());
    const std::string& text = help->print;
    for (const char* flag : {"--help", "--version", "--config", "--vhost-user", "--vhost-user-client", "--nic",
                             "--lcores", "--metrics", "--control", "--run-dir", "--file-prefix", "--memory",
                             "--no-huge", "--log-level"}) {
        CAPTURE(flag);
        CHECK(text.find(flag) != std::string::npos);
    }
    CHECK(text.find("vuswitchctl") != std::string::npos);
    auto short_help = parse({"-h"});
    REQUIRE(short_help.has_value());
    CHECK(short_help->print == text);
    auto version = parse({"--version"});
    REQUIRE(version.has_value());
    CHECK(version->print.find("vuswitchd 0.1.0") != std::string::npos);
}

TEST_CASE("parse_lcores: lists and ranges")
{
    CHECK(*parse_lcores("0,1") == std::vector<unsigned>{0, 1});
    CHECK(*parse_lcores("0-2") == std::vector<unsigned>{0, 1, 2});
    CHECK(*parse_lcores("0,2-3") == std::vector<unsigned>{0, 2, 3});
    CHECK(*parse_lcores("5") == std::vector<unsigned>{5});
    CHECK(*parse_lcores("3-3") == std::vector<unsigned>{3});
    CHECK(*parse_lcores("1023") == std::vector<unsigned>{1023});
    for (const char* bad : {"", ",", ",0", "0,,1", "a", "1a", "1-", "-1", "3-1", "1-2-3", "0x1", "1024", "1 2"}) {
        const std::string list = bad;
        CAPTURE(list);
        auto r = parse_lcores(list);
        CHECK_FALSE(r.has_value());
        if (!r)
            CHECK(std::string(r.error().reason) == "config");
    }
}

TEST_CASE("parse_lcores: a range's upper end is bounded like a single core")
{
    // "1024" alone is rejected; "0-1024" must be too (and "0-4294967295" must not loop forever).
    auto r = parse_lcores("1000-1024");
    CHECK_MESSAGE(!r.has_value(), "accepted ", (r ? r->size() : 0), " cores up to 1024");
}

TEST_CASE("port_name_from_path: the file name without extension")
{
    CHECK(port_name_from_path("/run/vuswitch/vm1.sock") == "vm1");
    CHECK(port_name_from_path("vm2.sock") == "vm2");
    CHECK(port_name_from_path("/tmp/dir.d/vm3") == "vm3");
    CHECK(port_name_from_path("/tmp/vm4.a.b") == "vm4");
    CHECK(port_name_from_path("/tmp/.hidden") == ".hidden");
    CHECK(port_name_from_path("plain") == "plain");
}

TEST_CASE("--pin PORT=PMD: names as vuswitchctl shows them, repeatable, in the config file too")
{
    const Config c = config_of({"--lcores", "0-2", "--vhost-user", "/tmp/a.sock", "--vhost-user-client", "/tmp/vm.b.sock",
                                "--nic", "net_null0,size=64", "--pin", "a=1", "--pin", "net_null0=0", "--pin", "vm=1"});
    CHECK(c.pins == std::vector<std::pair<std::string, unsigned>>{{"a", 1}, {"net_null0", 0}, {"vm", 1}});
    CHECK(config_of({}).pins.empty());
    // The embedded default ports can be pinned too.
    CHECK(config_of({"--lcores", "0-2", "--pin", "vhost1=1"}).pins.size() == 1);

    TempFile f("lcores = 0-2\nvhost-user = /tmp/f1.sock\nvhost-user = /tmp/f2.sock\npin = f1=1\npin = f2=0\n");
    const Config fc = config_of({"--config", f.path.c_str()});
    CHECK(fc.pins == std::vector<std::pair<std::string, unsigned>>{{"f1", 1}, {"f2", 0}});
}

TEST_CASE("--pin: unknown port, PMD out of range and bad syntax are clear config errors")
{
    const std::string unknown = error_of({"--lcores", "0-2", "--vhost-user", "/tmp/a.sock", "--pin", "b=0"});
    CHECK(unknown.find("--pin b=0") != std::string::npos);
    CHECK(unknown.find("no port named b") != std::string::npos);
    CHECK(unknown.find("a") != std::string::npos);  // lists the ports there are

    const std::string range = error_of({"--lcores", "0-2", "--vhost-user", "/tmp/a.sock", "--pin", "a=2"});
    CHECK(range.find("--pin a=2") != std::string::npos);
    CHECK(range.find("out of range") != std::string::npos);
    CHECK(range.find("2 PMD cores (0..1)") != std::string::npos);
    CHECK(error_of({"--vhost-user", "/tmp/a.sock", "--pin", "a=1"}).find("1 PMD core (0..0)") != std::string::npos);

    for (const char* spec : {"a", "a=", "=0", "a=x", "a=-1", "a=+1", "a=1x", "a=0.5", "a= 1"}) {
        const std::string bad = spec;
        CAPTURE(bad);
        CHECK(error_of({"--vhost-user", "/tmp/a.sock", "--pin", spec}).find("expected PORT=PMD") != std::string::npos);
    }
    CHECK(error_of({"--lcores", "0-2", "--vhost-user", "/tmp/a.sock", "--pin", "a=0", "--pin", "a=1"})
              .find("already pinned") != std::string::npos);

    TempFile f("vhost-user = /tmp/f1.sock\npin = nope=0\n");
    CHECK(error_of({"--config", f.path.c_str()}).find("no port named nope") != std::string::npos);
}

TEST_CASE("--rebalance-interval and --rebalance-threshold")
{
    const Config d = config_of({});
    CHECK(d.rebalance_interval_s == 10);
    CHECK(d.rebalance_threshold_pct == 25);
    const Config c = config_of({"--rebalance-interval", "0", "--rebalance-threshold", "50"});
    CHECK(c.rebalance_interval_s == 0);
    CHECK(c.rebalance_threshold_pct == 50);
    CHECK(error_of({"--rebalance-interval", "-1"}).find("--rebalance-interval") != std::string::npos);
    CHECK(error_of({"--rebalance-interval", "soon"}).find("rebalance-interval") != std::string::npos);
    CHECK(error_of({"--rebalance-threshold", "0"}).find("--rebalance-threshold") != std::string::npos);
    CHECK(error_of({"--rebalance-threshold", "101"}).find("--rebalance-threshold") != std::string::npos);
}

TEST_CASE("--zero-copy-min: a frame size or off, from the flag or the config file")
{
    CHECK(config_of({}).zero_copy_min == 1024);
    CHECK(config_of({"--zero-copy-min", "60"}).zero_copy_min == 60);
    CHECK(config_of({"--zero-copy-min", "65535"}).zero_copy_min == 65535);
    CHECK(config_of({"--zero-copy-min", "off"}).zero_copy_min == 0);
    TempFile f("zero-copy-min = 1024\n");
    CHECK(config_of({"--config", f.path.c_str()}).zero_copy_min == 1024);
    for (const char* bad : {"59", "65536", "0", "-1", "512B", "", "1e3", "OFF"}) {
        const std::string value = bad;
        CAPTURE(value);
        CHECK(error_of({"--zero-copy-min", bad}).find("--zero-copy-min") != std::string::npos);
    }
}

TEST_CASE("--lcores LCORE@CPU: several lcores on one CPU")
{
    const Config c = config_of({"--lcores", "0@0,1@1,2@1"});
    CHECK(c.lcores == std::vector<unsigned>{0, 1, 2});
    CHECK(c.lcore_cpus == std::vector<int>{0, 1, 1});
    const Config mixed = config_of({"--lcores", "0,3@1,4-5"});
    CHECK(mixed.lcores == std::vector<unsigned>{0, 3, 4, 5});
    CHECK(mixed.lcore_cpus == std::vector<int>{-1, 1, -1, -1});
    CHECK(config_of({"--lcores", "0-1"}).lcore_cpus == std::vector<int>{-1, -1});
    for (const char* bad : {"0@", "@1", "0@1@2", "0@1-2", "1-2@0", "0@1024", "0,1,1", "0-2,2@1"}) {
        const std::string list = bad;
        CAPTURE(list);
        CHECK_FALSE(parse_lcore_list(list).has_value());
    }
    CHECK(error_of({"--lcores", "0,1,1"}).find("listed twice") != std::string::npos);
}

TEST_CASE("--help mentions the placement flags")
{
    auto help = parse({"--help"});
    REQUIRE(help.has_value());
    for (const char* flag : {"--pin", "--rebalance-interval", "--rebalance-threshold", "LCORE@CPU", "--zero-copy-min"}) {
        CAPTURE(flag);
        CHECK(help->print.find(flag) != std::string::npos);
    }
}

TEST_CASE("port_names: creation order, named as the ports name themselves")
{
    Config c;
    c.nics = {"net_tap0,iface=x", "0000:03:00.0"};
    c.vhost_server = {"/run/vm1.sock"};
    c.vhost_client = {"/run/vm2.sock"};
    CHECK(port_names(c) == std::vector<std::string>{"net_tap0", "0000:03:00.0", "vm1", "vm2"});
}
