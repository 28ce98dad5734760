// Ports added and removed while the switch runs (README "Ports at run time"):
// add_port / del_port / reload through the control socket and vuswitchctl, SIGHUP,
// deleting a port whose guest is connected (session closed, memory unmapped, FDB
// entries and metric series gone, the port's id reused safely), and 100 add/del
// cycles under byte-checked traffic on other ports: nothing lost, duplicated or
// reordered there, fds, mappings and RSS back where they were.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;

const Mac kMacPeer = mac(0x2a);  // the runtime ports' peer, in VLAN 20
const Mac kMacNew = mac(0x2b);   // each cycle's new guest

nlohmann::json add_vhost(const Daemon& d, const std::string& name, nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json r{{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", d.socket_path(name)}};
  r.update(extra);
  return ctl(d, r);
}

nlohmann::json del(const Daemon& d, const std::string& name) { return ctl(d, {{"cmd", "del_port"}, {"port", name}}); }

bool fdb_has_port(const Daemon& d, const std::string& name) {
  const nlohmann::json fdb = ctl(d, {{"cmd", "show_fdb"}});
  for (const auto& e : fdb["fdb"])
    if (e["port"] == name) return true;
  return false;
}

bool metrics_name_port(const Daemon& d, const std::string& name) {
  auto m = d.scrape();
  REQUIRE(m.has_value());
  return m->has("vusw_port_rx_packets_total", {{"port", name}});
}

DaemonConfig servers(std::vector<std::string> names) {
  DaemonConfig c;
  c.servers = std::move(names);
  return c;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

}  // namespace

TEST_CASE("add_port, del_port: errors with their codes, the port switches, FDB entries and metric series go") {
  Daemon d(servers({"a"}));
  auto a = attach(d, "a");
  REQUIRE(a);
  std::this_thread::sleep_for(milliseconds(300));  // the FDB clock's first tick (see hotplug_proof_test)

  SUBCASE("bad requests change nothing") {
    CHECK(error_code(ctl(d, {{"cmd", "add_port"}, {"type", "tap"}, {"target", "x"}})) == "bad_argument");
    CHECK(error_code(ctl(d, {{"cmd", "add_port"}, {"type", "vhost-user"}})) == "bad_argument");
    CHECK(error_code(add_vhost(d, "m", {{"mtu", 20}})) == "bad_argument");
    CHECK(error_code(add_vhost(d, "m", {{"vlan", "x|y"}})) == "bad_argument");
    CHECK(error_code(add_vhost(d, "m", {{"trunks", "10"}})) == "bad_argument");  // trunks= needs vlan-mode=trunk
    CHECK(error_code(ctl(d, {{"cmd", "add_port"}, {"type", "nic"}, {"target", "net_bogus0"}})) == "failed");
    CHECK(error_code(ctl(d, {{"cmd", "add_port"}, {"type", "nic"}, {"target", "0000:03:00.0"}})) == "failed");
    CHECK(error_code(add_vhost(d, "a")) == "port_exists");
    CHECK(error_code(add_vhost(d, "q", {{"name", "a"}})) == "port_exists");
    CHECK(error_code(del(d, "nope")) == "no_such_port");
    CHECK(ctl(d, {{"cmd", "show_ports"}})["ports"].size() == 1);
  }

  SUBCASE("a new port switches at once; deleting it closes its guest and forgets it") {
    LeakBaseline leaks(d);
    const nlohmann::json added = add_vhost(d, "b", {{"mtu", 9000}});
    REQUIRE_MESSAGE(!added.contains("error"), added.dump());
    CHECK(added["port"]["name"] == "b");
    CHECK(added["port"]["state"] == "waiting");
    CHECK(added["port"]["mtu"] == 9000);
    auto b = attach(d, "b");
    REQUIRE(b);
    CHECK(pair_switches(*a, kMacA, *b, kMacB));
    CHECK(fdb_has_port(d, "b"));
    CHECK(metrics_name_port(d, "b"));
    CHECK(json_u64(d.port("b"), "mem_regions") >= 1);

    CHECK(del(d, "b")["removed"] == true);
    CHECK(b->conn().wait_closed(milliseconds(2000)));  // the session ends with the port
    CHECK(d.port("b").is_null());
    CHECK_FALSE(fdb_has_port(d, "b"));
    CHECK_FALSE(metrics_name_port(d, "b"));
    CHECK_FALSE(std::filesystem::exists(d.socket_path("b")));
    b.reset();
    leaks.wait_back();  // its memory unmapped, its fds closed
    leaks.check();

    // The id b had is free again once its FDB entries are gone: a new port takes it
    // and gets only its own frames.
    REQUIRE_FALSE(add_vhost(d, "c").contains("error"));
    auto c = attach(d, "c");
    REQUIRE(c);
    CHECK(pair_switches(*a, kMacA, *c, kMacNew));
    CHECK_FALSE(fdb_has_port(d, "b"));
  }

  SUBCASE("vuswitchctl add-port, del-port: human output and exit codes") {
    CtlRun r = run_ctl(d, "add-port vhost-user " + d.socket_path("v") + " --name vv --mtu 2000 --vlan 7");
    CHECK(r.status == 0);
    CHECK(has(r.out, "port vv (vhost-user) added on PMD 0: waiting"));
    CHECK(d.port("vv")["mtu"] == 2000);
    CHECK(d.port("vv")["vlan"] == 7);
    r = run_ctl(d, "add-port nic 'net_null3,no-rx=1' --name n3");
    CHECK(r.status == 0);
    CHECK(has(r.out, "port n3 (ethdev) added"));
    r = run_ctl(d, "add-port nic net_null4 --client");
    CHECK(r.status == 2);  // --client is for vhost-user ports: nothing sent
    CHECK(has(r.err, "unknown option `--client`"));
    r = run_ctl(d, "add-port vhost-user " + d.socket_path("v") + " --name vv");
    CHECK(r.status == 1);
    CHECK(has(r.err, "port_exists"));
    r = run_ctl(d, "--json del-port n3");
    CHECK(r.status == 0);
    CHECK(nlohmann::json::parse(r.out)["removed"] == true);
    r = run_ctl(d, "del-port vv");
    CHECK(r.status == 0);
    CHECK(has(r.out, "port vv removed"));
    // The same devargs again: the device was detached, not just stopped.
    CHECK(run_ctl(d, "add-port nic 'net_null3,no-rx=1' --name n3").status == 0);
    CHECK(run_ctl(d, "del-port nope").status == 1);
  }
  finish(d);
}

TEST_CASE("reload and SIGHUP apply the config file's ports; the others are left alone") {
  const std::string dir = "/tmp/vusw-reload-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/vuswitchd.conf";
  // Every port in the file: ports on the command line would hide the file's (Boost
  // program_options: the first source that gives a multi-value option wins).
  const std::string a = "vhost-user = " + dir + "/a.sock\n";
  write_file(file, a + "vhost-user = " + dir + "/c1.sock\nvhost-user = " + dir + "/c2.sock\n");
  DaemonConfig cfg;
  cfg.extra_args = {"--config", file};
  Daemon d(cfg);
  REQUIRE_FALSE(ctl(d, {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", dir + "/rt.sock"}}).contains("error"));
  auto c1 = FakeFrontend::connect(dir + "/c1.sock");
  REQUIRE(c1);
  REQUIRE(c1->bring_up());

  // c2 goes, c3 comes, c1 changes (mtu): removed and added again, its guest disconnected.
  write_file(file, a + "vhost-user = " + dir + "/c1.sock|mtu=2000\nvhost-user = " + dir + "/c3.sock\n");
  nlohmann::json r = ctl(d, {{"cmd", "reload"}});
  INFO(r.dump());
  CHECK(r["added"] == nlohmann::json{"c1", "c3"});
  CHECK(r["removed"] == nlohmann::json{"c1", "c2"});
  CHECK(r["kept"] == nlohmann::json{"a"});
  CHECK(r["failed"].empty());
  CHECK(c1->conn().wait_closed(milliseconds(2000)));
  CHECK(d.port("c1")["mtu"] == 2000);
  CHECK(d.port("c2").is_null());
  CHECK_FALSE(d.port("rt").is_null());

  // A name the file now gives to a port added with vuswitchctl is refused, not taken over;
  // an option other than ports is reported as needing a restart.
  write_file(file, a + "vhost-user = " + dir + "/c1.sock|mtu=2000\nvhost-user = " + dir + "/rt.sock\nzero-copy-min = 2048\nmac-age = 60\n");
  r = ctl(d, {{"cmd", "reload"}});
  CHECK(r["removed"] == nlohmann::json{"c3"});
  REQUIRE(r["failed"].size() == 1);
  CHECK(has(r["failed"][0].get<std::string>(), "rt: a port added with vuswitchctl has this name"));
  CHECK(r["needs_restart"] == nlohmann::json{"zero_copy_min"});  // --mac-age applies at once
  CHECK(ctl(d, {{"cmd", "show_config"}})["config"]["mac_age"] == 60);

  // A file that does not parse changes nothing.
  write_file(file, a + "vhost-user = " + dir + "/c1.sock|mtu=1\n");
  r = ctl(d, {{"cmd", "reload"}});
  CHECK(error_code(r) == "bad_argument");
  CHECK_FALSE(d.port("c1").is_null());

  // SIGHUP does the same.
  write_file(file, a + "vhost-user = " + dir + "/c4.sock\n");
  REQUIRE(::kill(d.pid(), SIGHUP) == 0);
  CHECK(wait_until([&] { return !d.port("c4").is_null() && d.port("c1").is_null(); }, milliseconds(3000)));
  CHECK(has(d.log(), "SIGHUP: reloading the configuration"));
  finish(d);
  std::filesystem::remove_all(dir);
}

TEST_CASE("reload of a changed NIC closes the old device before it opens the new one") {
  // The same devargs with another option: the port is removed and added again, and the
  // device can only be probed again once the removed port has let it go.
  const std::string dir = "/tmp/vusw-reload-nic-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/vuswitchd.conf";
  const std::string a = "vhost-user = " + dir + "/a.sock\n";
  write_file(file, a + "nic = net_null7,no-rx=1\n");
  DaemonConfig cfg;
  cfg.extra_args = {"--config", file};
  Daemon d(cfg);
  REQUIRE_FALSE(d.port("net_null7").is_null());

  for (const int mtu : {1400, 1500, 9000}) {
    CAPTURE(mtu);
    write_file(file, a + "nic = net_null7,no-rx=1|mtu=" + std::to_string(mtu) + "\n");
    const nlohmann::json r = ctl(d, {{"cmd", "reload"}});
    INFO(r.dump());
    CHECK(r["removed"] == nlohmann::json{"net_null7"});
    CHECK(r["added"] == nlohmann::json{"net_null7"});
    CHECK(r["failed"].empty());
    CHECK(d.port("net_null7")["mtu"] == mtu);
  }
  finish(d);
  std::filesystem::remove_all(dir);
}

TEST_CASE("100 port add/del cycles under traffic on other ports: nothing lost there, nothing leaks") {
  Daemon d(servers({"a", "b"}));
  auto a = attach(d, "a");
  auto b = attach(d, "b");
  REQUIRE(a);
  REQUIRE(b);
  std::this_thread::sleep_for(milliseconds(300));  // the FDB clock's first tick (see hotplug_proof_test)
  REQUIRE(pair_switches(*a, kMacA, *b, kMacB));
  // The runtime ports live in VLAN 20: their learning floods stay away from a and b.
  REQUIRE_FALSE(add_vhost(d, "x", {{"vlan", 20}}).contains("error"));
  auto x = attach(d, "x");
  REQUIRE(x);
  // Warm-up (first-use allocations), then the baselines.
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(add_vhost(d, "z", {{"vlan", 20}}).contains("error"));
    REQUIRE(del(d, "z")["removed"] == true);
  }
  LeakBaseline leaks(d);
  const size_t rss0 = rss_kib(d);

  std::this_thread::sleep_for(milliseconds(100));
  a->poll_rx();
  b->poll_rx();
  uint64_t exchanged = 0;
  {
    Background traffic(*a, kMacA, *b, kMacB);
    for (int cycle = 0; cycle < 100; ++cycle) {
      CAPTURE(cycle);
      if (cycle % 10 == 9) {  // a NIC now and then (a null device that receives nothing)
        const auto r = ctl(d, {{"cmd", "add_port"}, {"type", "nic"}, {"target", "net_null9,no-rx=1"}, {"vlan", 20}});
        REQUIRE_MESSAGE(!r.contains("error"), r.dump());
        REQUIRE(del(d, "net_null9")["removed"] == true);
        continue;
      }
      REQUIRE_FALSE(add_vhost(d, "z", {{"vlan", 20}}).contains("error"));
      auto z = attach(d, "z");
      REQUIRE(z);
      if (cycle % 2 == 0) {  // traffic through the new port, then deleted with its guest connected
        REQUIRE(pair_switches(*z, kMacNew, *x, kMacPeer, 4));
        exchanged += 8;
      } else {                // or its guest leaves first
        z->conn().close();
      }
      REQUIRE(del(d, "z")["removed"] == true);
    }
    check_lossless(traffic.finish());
  }
  CHECK(json_sum(d.port("a"), "drops") == 0);
  CHECK(json_sum(d.port("b"), "drops") == 0);
  CHECK(pair_switches(*a, kMacA, *b, kMacB));
  leaks.wait_back();
  const size_t rss1 = rss_kib(d);
  MESSAGE("100 cycles: " << exchanged << " frames through the cycled ports; RSS " << rss0 / 1024 << " -> "
                         << rss1 / 1024 << " MiB");
  leaks.check();
  if (sanitized(d))
    MESSAGE("RSS not compared: AddressSanitizer's quarantine keeps freed memory resident");
  else
    CHECK(rss1 < rss0 + 8 * 1024);  // no growth with the cycles (100 leaked ports would be far more)
  finish(d);
}

}  // namespace vusw::it
