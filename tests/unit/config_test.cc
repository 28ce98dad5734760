// vuswitchd's command line and config file.
#include "control/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/config_args.h"

using namespace vusw;
using namespace vusw::test;

namespace {

Config config_of(std::initializer_list<const char*> args)
{
    auto r = parse(args);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->print.empty());
    return r->config;
}

// The PATHs or DEVARGS of port flags, without their options.
std::vector<std::string> targets(const std::vector<PortSpec>& specs)
{
    std::vector<std::string> out;
    for (const PortSpec& s : specs)
        out.push_back(s.target);
    return out;
}

}  // namespace

TEST_CASE("no arguments: the embedded default")
{
    const Config c = config_of({});
    CHECK(c.used_default_ports);
    REQUIRE(c.vhost_server.size() == 2);
    CHECK(c.vhost_server[0].target == "/run/vuswitch/vhost0.sock");
    CHECK(c.vhost_server[1].target == "/run/vuswitch/vhost1.sock");
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
    CHECK(c.vhost_server[0].target == "/tmp/x/vhost0.sock");
    CHECK(c.control == "/tmp/x/vuswitchd.ctl");
    CHECK(config_of({"--run-dir", "/tmp/x", "--control", "/tmp/c.sock"}).control == "/tmp/c.sock");
}

TEST_CASE("repeatable port flags keep their order; any port option replaces the default")
{
    const Config c = config_of({"--vhost-user", "/tmp/a.sock", "--nic", "net_null0", "--vhost-user", "/tmp/b.sock",
                                "--vhost-user-client", "/tmp/c.sock", "--nic", "net_tap0,iface=x"});
    CHECK_FALSE(c.used_default_ports);
    CHECK(targets(c.vhost_server) == std::vector<std::string>{"/tmp/a.sock", "/tmp/b.sock"});
    CHECK(targets(c.vhost_client) == std::vector<std::string>{"/tmp/c.sock"});
    CHECK(targets(c.nics) == std::vector<std::string>{"net_null0", "net_tap0,iface=x"});

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
    CHECK(targets(c.vhost_server) == std::vector<std::string>{"/tmp/eq.sock"});
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

TEST_CASE("the packet buffer pool: sized from --memory unless --mbufs says, and --mbufs must fit in --memory")
{
    CHECK(pool_mbufs(config_of({})) == 16383);                    // 256 MB
    CHECK(pool_mbufs(config_of({"--memory", "64"})) == 8191);     // half of 64 MB holds 13107
    CHECK(pool_mbufs(config_of({"--memory", "4096"})) == 16383);  // at most 16383 unless asked
    CHECK(pool_mbufs(config_of({"--memory", "64", "--mbufs", "600"})) == 600);
    CHECK(pool_mbufs(config_of({"--memory", "1024", "--mbufs", "262143"})) == 262143);
    const std::string too_many = error_of({"--memory", "64", "--mbufs", "100000"});
    CHECK(too_many.find("--mbufs 100000 needs --memory 326") != std::string::npos);
    CHECK(error_of({"--mbufs", "100"}).find("511..4194303") != std::string::npos);
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
    CHECK(targets(c.vhost_server) == std::vector<std::string>{"/tmp/f1.sock", "/tmp/f2.sock"});
    CHECK(targets(c.nics) == std::vector<std::string>{"net_null0"});
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
                             "--lcores", "--metrics", "--control", "--run-dir", "--state-file", "--file-prefix", "--memory",
                             "--no-huge", "--log-level", "--huge-dir", "--user", "--group", "--socket-mode",
                             "--socket-group", "--ctl-socket-mode", "--ctl-socket-group"}) {
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

TEST_CASE("--mac-age: seconds a learned MAC is kept, 1..86400")
{
    CHECK(config_of({}).mac_age_s == 300);
    CHECK(config_of({"--mac-age", "2"}).mac_age_s == 2);
    for (const char* bad : {"0", "86401", "-5", "soon"}) {
        CAPTURE(bad);
        CHECK(error_of({"--mac-age", bad}).find("mac-age") != std::string::npos);
    }
    CHECK(error_of({"--mac-age", "0"}).find("1..86400 seconds") != std::string::npos);
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
    const Config c = config_of({"--vhost-user", "/run/vm1.sock", "--vhost-user-client", "/run/vm2.sock", "--nic",
                                "net_tap0,iface=x", "--nic", "0000:03:00.0"});
    CHECK(port_names(c) == std::vector<std::string>{"net_tap0", "0000:03:00.0", "vm1", "vm2"});
}

TEST_CASE("port options: `|NAME=VALUE` after PATH or DEVARGS, on every port flag and in the config file")
{
    const Config c = config_of({"--vhost-user", "/tmp/a.sock|vlan=10|mtu=9000", "--vhost-user-client",
                                "/tmp/b.sock|name=guest-b|vlan-mode=access|vlan=20", "--nic",
                                "net_af_packet0,iface=veth0,qpairs=1|vlan-mode=trunk|trunks=10,20,100-110|vlan=5"});
    REQUIRE(c.vhost_server.size() == 1);
    const PortSpec& a = c.vhost_server[0];
    CHECK(a.target == "/tmp/a.sock");
    CHECK(a.name == "a");
    CHECK(a.settings.mtu == 9000);
    CHECK(a.settings.mtu_given);  // the front-end may not exceed it
    CHECK(a.settings.vlan_mode == VlanMode::access);
    CHECK(a.settings.vlan == 10);
    const PortSpec& b = c.vhost_client.at(0);
    CHECK(b.target == "/tmp/b.sock");
    CHECK(b.name == "guest-b");
    CHECK(b.settings.vlan == 20);
    CHECK(b.settings.mtu == 1500);
    CHECK_FALSE(b.settings.mtu_given);  // the front-end's NET_SET_MTU may set it
    const PortSpec& nic = c.nics.at(0);
    CHECK(nic.target == "net_af_packet0,iface=veth0,qpairs=1");  // devargs keep their commas and `=`
    CHECK(nic.name == "net_af_packet0");
    CHECK(nic.settings.vlan_mode == VlanMode::trunk);
    CHECK(nic.settings.vlan == 5);
    CHECK(nic.settings.trunks.to_string() == "10,20,100-110");
    CHECK(port_names(c) == std::vector<std::string>{"net_af_packet0", "a", "guest-b"});

    TempFile f("vhost-user = /tmp/f1.sock|vlan=10\nnic = net_null0|name=uplink|vlan-mode=trunk\npin = uplink=0\n");
    const Config fc = config_of({"--config", f.path.c_str()});
    CHECK(fc.vhost_server.at(0).settings.vlan == 10);
    CHECK(fc.nics.at(0).name == "uplink");
    CHECK(fc.nics.at(0).settings.trunks == VlanSet::all_vlans());
    CHECK(fc.pins == std::vector<std::pair<std::string, unsigned>>{{"uplink", 0}});  // --pin by the given name
}

TEST_CASE("port options: defaults")
{
    const Config c = config_of({"--vhost-user", "/tmp/a.sock", "--nic", "net_null0|vlan-mode=trunk"});
    const PortConfig& a = c.vhost_server.at(0).settings;
    CHECK(a.mtu == 1500);
    CHECK_FALSE(a.mtu_given);
    CHECK(config_of({"--vhost-user", "/tmp/a.sock|mtu=1500"}).vhost_server.at(0).settings.mtu_given);
    CHECK(a.vlan_mode == VlanMode::access);
    CHECK(a.vlan == 0);
    CHECK(a.vlan_plain());
    const PortConfig& t = c.nics.at(0).settings;
    CHECK(t.vlan == 0);
    CHECK(t.trunks == VlanSet::all_vlans());
    CHECK(t.trunks.to_string() == "all");
    CHECK_FALSE(t.vlan_plain());
    for (const PortSpec& p : config_of({}).vhost_server)
        CHECK(p.settings.vlan_plain());
}

TEST_CASE("port options: bad values are config errors naming the option and what is allowed")
{
    const auto error_for = [](const char* value) {
        CAPTURE(value);
        const std::string e = error_of({"--vhost-user", value});
        CHECK(e.find("--vhost-user") != std::string::npos);
        CHECK(e.find(value) != std::string::npos);  // the whole value, as given
        return e;
    };
    CHECK(error_for("/tmp/a.sock|mtu=67").find("mtu=67: expected 68..9000 bytes") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|mtu=9001").find("mtu=9001: expected 68..9000") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|mtu=1500B").find("mtu=1500B") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|mtu=").find("mtu=: expected") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan=4095").find("vlan=4095: expected a VLAN id 0..4094") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan=-1").find("vlan=-1: expected a VLAN id 0..4094") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=hybrid").find("vlan-mode=hybrid: expected access or trunk") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=0").find("trunks=0: `0` is not a VLAN id 1..4094") !=
          std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=10,4095").find("`4095` is not a VLAN id") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=20-10").find("`20-10`") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=10,,20").find("trunks=10,,20") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=10,").find("trunks=10,") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan-mode=trunk|trunks=").find("trunks=") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|trunks=10").find("trunks= is for trunk ports") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan=1|vlan=2").find("vlan given twice") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlans=1").find("unknown port option `vlans` (options: name, mtu, vlan-mode, vlan, trunks)") !=
          std::string::npos);
    CHECK(error_for("/tmp/a.sock|vlan").find("expected NAME=VALUE") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|").find("expected NAME=VALUE") != std::string::npos);
    CHECK(error_for("|vlan=1").find("expected a PATH") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|name=").find("name=: expected 1..64 characters") != std::string::npos);
    CHECK(error_for("/tmp/a.sock|name=a b").find("name=a b") != std::string::npos);
    CHECK(error_of({"--nic", "net_null0|mtu=0"}).find("--nic net_null0|mtu=0: mtu=0") != std::string::npos);
    CHECK(error_of({"--nic", "|mtu=1500"}).find("expected DEVARGS") != std::string::npos);
    TempFile f("vhost-user = /tmp/f1.sock|vlan=5000\n");
    CHECK(error_of({"--config", f.path.c_str()}).find("vlan=5000") != std::string::npos);
}

TEST_CASE("port options: two ports may not share a name")
{
    CHECK(error_of({"--vhost-user", "/tmp/a/vm.sock", "--vhost-user", "/tmp/b/vm.sock"}).find("two ports are named vm") !=
          std::string::npos);
    CHECK(error_of({"--vhost-user", "/tmp/a.sock|name=x", "--nic", "net_null0|name=x"}).find("two ports are named x") !=
          std::string::npos);
    const Config c = config_of({"--vhost-user", "/tmp/a/vm.sock", "--vhost-user", "/tmp/b/vm.sock|name=vm2"});
    CHECK(port_names(c) == std::vector<std::string>{"vm", "vm2"});
}

TEST_CASE("parse_vlan_list: ids and ranges 1..4094")
{
    const VlanSet s = *parse_vlan_list("10,20,100-110,4094");
    CHECK(s.contains(10));
    CHECK(s.contains(20));
    CHECK(s.contains(100));
    CHECK(s.contains(105));
    CHECK(s.contains(110));
    CHECK(s.contains(4094));
    CHECK_FALSE(s.contains(0));
    CHECK_FALSE(s.contains(11));
    CHECK_FALSE(s.contains(111));
    CHECK(s.to_string() == "10,20,100-110,4094");
    CHECK(parse_vlan_list("1-4094")->to_string() == "all");
    CHECK(parse_vlan_list("7,8")->to_string() == "7,8");
    CHECK(parse_vlan_list("5-5")->to_string() == "5");
    for (const char* bad : {"", ",", "0", "4095", "a", "1-", "-1", "3-1", "1-2-3", "1,,2", "1,", " 1"}) {
        const std::string list = bad;
        CAPTURE(list);
        CHECK_FALSE(parse_vlan_list(list).has_value());
    }
}

TEST_CASE("--help documents the port options")
{
    auto help = parse({"--help"});
    REQUIRE(help.has_value());
    for (const char* text : {"PATH[|OPTION=VALUE...]", "DEVARGS[|OPTION=VALUE...]", "name=", "mtu=", "vlan-mode=", "vlan=",
                             "trunks=", "vlan_tagged_on_access", "vlan_not_allowed", "mtu_exceeded",
                             "VHOST_USER_NET_SET_MTU", "host_mtu=", "above mtu= is refused"}) {
        CAPTURE(text);
        CHECK(help->print.find(text) != std::string::npos);
    }
}

// --user/--group, the socket permission options and --huge-dir (control/privileges.h).

TEST_CASE("without --user nothing is dropped and the sockets are 0660 with their creator's group")
{
    auto r = parse({});
    REQUIRE(r.has_value());
    CHECK_FALSE(r->config.user);
    CHECK_FALSE(r->config.group);
    CHECK(r->config.socket_access == SocketAccess{0660, std::nullopt});
    CHECK(r->config.ctl_socket_access == SocketAccess{0660, std::nullopt});
    CHECK(r->config.huge_dir.empty());
}

TEST_CASE("--user takes the user's primary group, which the sockets get too")
{
    auto r = parse({"--user", "nobody"});
    REQUIRE(r.has_value());
    REQUIRE(r->config.user);
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.user->id == 65534);
    REQUIRE(r->config.group);
    CHECK(r->config.group->id == 65534);  // nogroup
    CHECK(r->config.socket_access.group == r->config.group);
    CHECK(r->config.ctl_socket_access.group == r->config.group);
}

TEST_CASE("--group, numeric ids, and socket groups of their own")
{
    auto r = parse({"--user", "65534", "--group", "0", "--socket-group", "daemon", "--ctl-socket-group", "65534",
                    "--socket-mode", "0666", "--ctl-socket-mode", "600"});
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.group->name == "root");
    CHECK(r->config.socket_access.mode == 0666);
    CHECK(r->config.socket_access.group->name == "daemon");
    CHECK(r->config.ctl_socket_access.mode == 0600);
    CHECK(r->config.ctl_socket_access.group->id == 65534);
}

TEST_CASE("unknown users and groups, root, and --group alone are config errors saying what to do")
{
    CHECK(error_of({"--user", "no-such-user-vusw"}).find("useradd") != std::string::npos);
    CHECK(error_of({"--user", "nobody", "--group", "no-such-group-vusw"}).find("groupadd") != std::string::npos);
    CHECK(error_of({"--socket-group", "no-such-group-vusw"}).find("--socket-group no-such-group-vusw: no such group") !=
          std::string::npos);
    CHECK(error_of({"--ctl-socket-group", "no-such-group-vusw"}).find("--ctl-socket-group") != std::string::npos);
    CHECK(error_of({"--user", "root"}).find("root") != std::string::npos);
    CHECK(error_of({"--user", "0"}).find("no drop") != std::string::npos);
    // Numbers beyond 32 bits name no one (4294967296 wrapped to uid 0, root, before).
    for (const char* id : {"4294967295", "4294967296", "99999999999999999999999"}) {
        CAPTURE(id);
        CHECK(error_of({"--user", id}).find("no such user") != std::string::npos);
        CHECK(error_of({"--user", "nobody", "--group", id}).find("no such group") != std::string::npos);
    }
    CHECK(error_of({"--group", "nogroup"}).find("give --user too") != std::string::npos);
}

TEST_CASE("the privilege options in a config file")
{
    TempFile file("user = nobody\ngroup = daemon\nsocket-mode = 0600\nctl-socket-group = root\n"
                  "huge-dir = /dev/hugepages\n");
    auto r = parse({"--config", file.path.c_str()});
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.group->name == "daemon");
    CHECK(r->config.socket_access == SocketAccess{0600, Identity{"daemon", 1}});
    CHECK(r->config.ctl_socket_access == SocketAccess{0660, Identity{"root", 0}});
    CHECK(r->config.huge_dir == "/dev/hugepages");
}

TEST_CASE("socket modes: octal 0..0777, else the expected form")
{
    for (const char* bad : {"rw-rw----", "0888", "1777", "66O", "", "-1", "07777", "0x1ff"})
        CHECK(error_of({"--socket-mode", bad}).find("expected an octal permission mode 0000..0777, e.g. 0660") !=
              std::string::npos);
    CHECK(error_of({"--ctl-socket-mode", "999"}).find("--ctl-socket-mode 999") != std::string::npos);
    CHECK(parse_mode("--socket-mode", "0o640").value() == 0640);
    CHECK(parse_mode("--socket-mode", "0").value() == 0);
    CHECK(parse_mode("--socket-mode", "777").value() == 0777);
}

TEST_CASE("--huge-dir, and not with --no-huge")
{
    auto r = parse({"--huge-dir", "/mnt/huge1G"});
    REQUIRE(r.has_value());
    CHECK(r->config.huge_dir == "/mnt/huge1G");
    CHECK(error_of({"--huge-dir", "/mnt/h", "--no-huge"}).find("pick one") != std::string::npos);
}
