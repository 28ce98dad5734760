// VXLAN tunnels added and removed while the switch runs (README "Ports at run time"):
// add_port with "type":"vxlan" over a net_null underlay it opens, or over a free --nic of
// the configuration; the errors (bad spec, unknown or busy underlay, PCI, MTU) and their
// codes, with nothing added and nothing leaked; del_port closes the underlay so the same
// device can be added again at once; the tunnel counters on /metrics (vusw_vxlan_*) come
// and go with the port. The frames themselves cross a real kernel VTEP in
// tests/system/vxlan.sh.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;

// Two remote VTEPs that never answer: the tunnel keeps asking for their MACs.
const std::string kRemotes = "local=10.9.0.1,remote=10.9.0.2,remote=10.9.0.3,vni=77";

std::string error_text(const nlohmann::json& reply) {
  return reply.contains("error") ? reply["error"].value("message", "") : "";
}

// add_port of the tunnel NAME over `underlay` (the devargs of the NIC it opens, named u-NAME).
nlohmann::json add_tunnel(const Daemon& d, const std::string& name, const std::string& underlay,
                          nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json r{{"cmd", "add_port"},
                   {"type", "vxlan"},
                   {"target", name + "," + kRemotes + ",underlay=u-" + name},
                   {"underlay", underlay}};
  r.update(extra);
  return ctl(d, r);
}

double metric(const Daemon& d, const std::string& name, const std::map<std::string, std::string>& labels) {
  auto m = d.scrape();
  REQUIRE(m.has_value());
  REQUIRE_MESSAGE(m->has(name, labels), name);
  return m->sum(name, labels);
}

bool has_metric(const Daemon& d, const std::string& name, const std::map<std::string, std::string>& labels) {
  auto m = d.scrape();
  REQUIRE(m.has_value());
  return m->has(name, labels);
}

// A daemon with a guest port, a NIC port (net_null5) and a configured tunnel vx6 over net_null6.
DaemonConfig with_nic_and_tunnel() {
  DaemonConfig c;
  c.servers = {"a"};
  c.extra_args = {"--nic",  "net_null5,no-rx=1", "--nic", "net_null6,no-rx=1",
                  "--vxlan", "vx6,local=10.9.6.1,remote=10.9.6.2,vni=6,underlay=net_null6"};
  return c;
}

}  // namespace

TEST_CASE("add_port vxlan: errors with their codes and messages; nothing is added, nothing leaks") {
  Daemon d(with_nic_and_tunnel());
  LeakBaseline leaks(d);
  const auto refused = [&](const nlohmann::json& reply, const std::string& code, const std::string& says) {
    INFO(reply.dump());
    CHECK(error_code(reply) == code);
    CHECK(has(error_text(reply), says));
  };
  // The spec is --vxlan's: its errors name the field and the form.
  refused(ctl(d, {{"cmd", "add_port"}, {"type", "vxlan"}, {"target", "vx1,local=10.9.0.1,remote=10.9.0.2,underlay=u"},
                  {"underlay", "net_null8,no-rx=1"}}),
          "bad_argument", "vni= is missing");
  refused(ctl(d, {{"cmd", "add_port"}, {"type", "vxlan"}, {"target", "vx1,local=10.9.0.1,remote=10.9.0.1,vni=1,underlay=u"},
                  {"underlay", "net_null8,no-rx=1"}}),
          "bad_argument", "remote= must not be the local= address");
  refused(ctl(d, {{"cmd", "add_port"}, {"type", "vxlan"}, {"target", "vx1," + kRemotes + ",underlay=nope"}}),
          "bad_argument", "underlay=nope names no --nic");
  refused(add_tunnel(d, "vx1", "net_null8,no-rx=1", {{"name", "x"}}), "bad_argument", "`name` is not for vxlan ports");
  refused(add_tunnel(d, "vx1", ""), "bad_argument", "DEVARGS");
  refused(add_tunnel(d, "vx1", "net_null8|vlan=3"), "bad_argument", "without `|`");
  refused(add_tunnel(d, "vx1", "net_null8,no-rx=1", {{"mtu", 1460}}), "bad_argument", "mtu=1460 does not fit");
  refused(add_tunnel(d, "vx1", "net_null8,no-rx=1", {{"underlay_mtu", 1000}, {"mtu", 990}}), "bad_argument",
          "mtu=990 does not fit");
  refused(ctl(d, {{"cmd", "add_port"}, {"type", "vxlan"}, {"target", "vx1," + kRemotes + ",underlay=u"},
                  {"underlay_mtu", 9000}}),
          "bad_argument", "`underlay_mtu` needs `underlay`");
  // The underlay: a device nothing else has, virtual at run time.
  refused(add_tunnel(d, "vx1", "net_null5,no-rx=1"), "port_exists", "port net_null5 uses this device already");
  refused(add_tunnel(d, "vx1", "net_null6"), "port_exists", "port vx6 uses this device already");
  refused(add_tunnel(d, "vx1", "0000:03:00.0"), "failed", "PCI NICs are given at start-up");
  refused(add_tunnel(d, "vx1", "net_bogus0"), "failed", "net_bogus0");
  refused(add_tunnel(d, "a", "net_null8,no-rx=1"), "port_exists", "a port named a exists");
  refused(add_tunnel(d, "vx6", "net_null8,no-rx=1"), "port_exists", "a port named vx6 exists");
  // A NIC port cannot take a tunnel's underlay either.
  refused(ctl(d, {{"cmd", "add_port"}, {"type", "nic"}, {"target", "net_null6,no-rx=1"}, {"name", "n6"}}), "port_exists",
          "port vx6 uses this device already");

  CHECK(ctl(d, {{"cmd", "show_ports"}})["ports"].size() == 3);  // a, net_null5, vx6 (and nothing else)...
  CHECK(d.port("vx1").is_null());
  // ... and the failed probes left no device behind: the same devargs work now.
  const nlohmann::json added = add_tunnel(d, "vx1", "net_null8,no-rx=1");
  REQUIRE_MESSAGE(!added.contains("error"), added.dump());
  CHECK(ctl(d, {{"cmd", "del_port"}, {"port", "vx1"}})["removed"] == true);
  leaks.wait_back();
  leaks.check();
  finish(d);
}

TEST_CASE("add_port vxlan, del_port: the tunnel switches at once, its counters are on /metrics, del closes its underlay") {
  Daemon d(with_nic_and_tunnel());
  LeakBaseline leaks(d);

  const nlohmann::json added = add_tunnel(d, "vx1", "net_null8,no-rx=1", {{"vlan", 20}, {"underlay_mtu", 9000}});
  REQUIRE_MESSAGE(!added.contains("error"), added.dump());
  const nlohmann::json& p = added["port"];
  CHECK(p["name"] == "vx1");
  CHECK(p["type"] == "vxlan");
  CHECK(p["vlan"] == 20);
  CHECK(p["mtu"] == 8950);  // the underlay's less the 50 bytes of VXLAN headers
  CHECK(p["vxlan"]["underlay"]["name"] == "u-vx1");
  CHECK(p["vxlan"]["vni"] == 77);
  REQUIRE(p["vxlan"]["remotes"].size() == 2);

  // The remotes never answer: the tunnel asks for each about once a second.
  const std::map<std::string, std::string> vx1{{"port", "vx1"}};
  for (int i = 0; i < 50 && metric(d, "vusw_vxlan_arp_requests_sent_total", vx1) < 4; ++i)
    std::this_thread::sleep_for(milliseconds(100));
  const double asked = metric(d, "vusw_vxlan_arp_requests_sent_total", vx1);
  CHECK(asked >= 4);
  const nlohmann::json shown = d.port("vx1")["vxlan"];
  CHECK(shown["arp_requests_sent"].get<double>() >= asked);  // the same counter, read later
  CHECK(metric(d, "vusw_vxlan_arp_replies_sent_total", vx1) == 0);
  CHECK(metric(d, "vusw_vxlan_arp_received_total", vx1) == 0);
  CHECK(metric(d, "vusw_vxlan_neighbours_learned_total", vx1) == 0);
  for (const std::string remote : {"10.9.0.2", "10.9.0.3"}) {
    const std::map<std::string, std::string> r{{"port", "vx1"}, {"remote", remote}};
    CHECK(metric(d, "vusw_vxlan_remote_resolved", r) == 0);
    CHECK(metric(d, "vusw_vxlan_encapsulated_packets_total", r) == 0);
    CHECK(metric(d, "vusw_vxlan_decapsulated_packets_total", r) == 0);
    CHECK(metric(d, "vusw_vxlan_remote_inner_macs", r) == 0);
  }
  CHECK(metric(d, "vusw_port_tx_packets_total", vx1) == 0);  // nothing goes out before the MACs are known
  CHECK(has_metric(d, "vusw_vxlan_arp_requests_sent_total", {{"port", "vx6"}}));  // the configured tunnel too

  CHECK(ctl(d, {{"cmd", "del_port"}, {"port", "vx1"}})["removed"] == true);
  CHECK(d.port("vx1").is_null());
  CHECK_FALSE(has_metric(d, "vusw_vxlan_arp_requests_sent_total", vx1));
  CHECK_FALSE(has_metric(d, "vusw_vxlan_encapsulated_packets_total", vx1));

  // The device was closed with the tunnel: at once again, then as a NIC port.
  for (int round = 0; round < 3; ++round) {
    const nlohmann::json again = add_tunnel(d, "vx1", "net_null8,no-rx=1");
    REQUIRE_MESSAGE(!again.contains("error"), again.dump());
    REQUIRE(ctl(d, {{"cmd", "del_port"}, {"port", "vx1"}})["removed"] == true);
  }
  const nlohmann::json nic = ctl(d, {{"cmd", "add_port"}, {"type", "nic"}, {"target", "net_null8,no-rx=1"}});
  REQUIRE_MESSAGE(!nic.contains("error"), nic.dump());
  REQUIRE(ctl(d, {{"cmd", "del_port"}, {"port", "net_null8"}})["removed"] == true);

  // A configured tunnel removed and added back over its --nic, without "underlay".
  REQUIRE(ctl(d, {{"cmd", "del_port"}, {"port", "vx6"}})["removed"] == true);
  const nlohmann::json vx6 = ctl(d, {{"cmd", "add_port"}, {"type", "vxlan"},
                                     {"target", "vx6,local=10.9.6.1,remote=10.9.6.2,vni=6,underlay=net_null6"}});
  REQUIRE_MESSAGE(!vx6.contains("error"), vx6.dump());
  CHECK(vx6["port"]["vxlan"]["underlay"]["name"] == "net_null6");
  REQUIRE(ctl(d, {{"cmd", "del_port"}, {"port", "vx6"}})["removed"] == true);
  leaks.wait_back();
  leaks.check();
  finish(d);
}

TEST_CASE("vuswitchctl add-port vxlan: human and --json output, exit codes, a VNI map, a gateway") {
  Daemon d(with_nic_and_tunnel());
  const std::string spec = "'vx2," + kRemotes + ",underlay=u2'";
  CtlRun r = run_ctl(d, "add-port vxlan " + spec + " --underlay 'net_null9,no-rx=1' --vlan 20 --underlay-mtu 2000");
  CHECK(r.status == 0);
  CHECK(has(r.out, "port vx2 (vxlan) added on PMD"));
  CHECK(d.port("vx2")["mtu"] == 1950);
  r = run_ctl(d, "show port vx2");
  CHECK(r.status == 0);
  CHECK(has(r.out, "VNI 77, local 10.9.0.1"));
  CHECK(has(r.out, "10.9.0.2 (?; 0 frames out, 0 in, 0 inner MACs)"));
  CHECK(has(r.out, "neighbours learned"));
  r = run_ctl(d, "add-port vxlan " + spec + " --underlay 'net_null9,no-rx=1'");
  CHECK(r.status == 1);
  CHECK(has(r.err, "port_exists"));
  r = run_ctl(d, "add-port vxlan " + spec + " --name x");
  CHECK(r.status == 2);  // the name is SPEC's first field: nothing sent
  CHECK(has(r.err, "unknown option `--name`"));
  r = run_ctl(d, "add-port vxlan 'vx3,local=10.9.0.1' --underlay net_null10");
  CHECK(r.status == 1);
  CHECK(has(r.err, "bad_argument"));
  r = run_ctl(d, "--json del-port vx2");
  CHECK(r.status == 0);
  CHECK(nlohmann::json::parse(r.out)["removed"] == true);
  r = run_ctl(d, "--json add-port vxlan " + spec + " --underlay 'net_null9,no-rx=1'");
  CHECK(r.status == 0);
  CHECK(nlohmann::json::parse(r.out)["port"]["vxlan"]["underlay"]["name"] == "u2");

  // Several VNIs mapped to VLANs: the same spec as --vxlan; a trunk of the mapped VLANs.
  const std::string mapped = "'vx4,local=10.9.0.1,remote=10.9.0.2,vni=5000:10,vni=5001:20,underlay=u4'";
  r = run_ctl(d, "add-port vxlan " + mapped + " --underlay 'net_null11,no-rx=1' --vlan 10");
  CHECK(r.status == 1);
  CHECK(has(r.err, "drop its vlan=, vlan-mode= and trunks= options"));
  r = run_ctl(d, "add-port vxlan " + mapped + " --underlay 'net_null11,no-rx=1'");
  CHECK(r.status == 0);
  const nlohmann::json vx4 = d.port("vx4");
  CHECK(vx4["vlan_mode"] == "trunk");
  CHECK(vx4["trunks"] == "10,20");
  CHECK(vx4["vxlan"]["vni"].is_null());
  CHECK(vx4["vxlan"]["vni_map"] == nlohmann::json::parse(
                                       R"([{"vni":5000,"vlan":10,"encapsulated":0,"decapsulated":0},
                                           {"vni":5001,"vlan":20,"encapsulated":0,"decapsulated":0}])"));
  r = run_ctl(d, "show port vx4");
  CHECK(has(r.out, "VNIs 5000 (VLAN 10; 0 frames out, 0 in), 5001 (VLAN 20; 0 frames out, 0 in), local 10.9.0.1"));
  CHECK(has_metric(d, "vusw_vxlan_vni_encapsulated_packets_total", {{"port", "vx4"}, {"vni", "5001"}}));
  CHECK(has_metric(d, "vusw_vxlan_vni_decapsulated_packets_total", {{"port", "vx4"}, {"vni", "5000"}}));
  CHECK(has_metric(d, "vusw_vxlan_vni_decapsulated_packets_total", {{"port", "vx2"}, {"vni", "77"}}));  // one VNI too

  // A routed underlay: an off-link remote needs gateway=; with it, its next hop is shown.
  r = run_ctl(d, "add-port vxlan 'vx5,local=10.9.5.1/24,remote=10.9.8.2,vni=5,underlay=u5' --underlay 'net_null12,no-rx=1'");
  CHECK(r.status == 1);
  CHECK(has(r.err, "remote=10.9.8.2 is outside local=10.9.5.1/24 and no gateway= is given"));
  r = run_ctl(d, "add-port vxlan 'vx5,local=10.9.5.1/24,gateway=10.9.5.254,remote=10.9.5.2,remote=10.9.8.2,vni=5,"
                 "underlay=u5' --underlay 'net_null12,no-rx=1'");
  CHECK(r.status == 0);
  const nlohmann::json vx5 = d.port("vx5")["vxlan"];
  CHECK(vx5["prefix"] == 24);
  CHECK(vx5["gateway"] == "10.9.5.254");
  CHECK(vx5["remotes"][0]["next_hop"] == "direct");
  CHECK(vx5["remotes"][1]["next_hop"] == "10.9.5.254");
  CHECK(vx5["remotes"][1]["mac"].is_null());  // the gateway never answers here
  r = run_ctl(d, "show port vx5");
  CHECK(has(r.out, "local 10.9.5.1/24"));
  CHECK(has(r.out, ", gateway 10.9.5.254, over u5"));
  CHECK(has(r.out, "10.9.5.2 (?; 0 frames out"));
  CHECK(has(r.out, "10.9.8.2 (via 10.9.5.254, ?; 0 frames out"));
  CHECK(metric(d, "vusw_vxlan_remote_resolved", {{"port", "vx5"}, {"remote", "10.9.8.2"}}) == 0);
  finish(d);
}

}  // namespace vusw::it
