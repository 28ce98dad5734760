// The ports added at run time outlive a restart of vuswitchd (README "Ports at run
// time"): recorded in the state file (RUN_DIR/ports.json, mode 0600) with their add_port
// requests, added again at start-up with the same names and options, switching again;
// del_port forgets them. A state file that cannot be read is moved aside and the daemon
// starts; a recorded port whose name a configured port has now is left out, saying so.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fixture.h"

namespace vusw::it {
namespace {

// What a restart must keep of a port: its name, type, origin and settings.
nlohmann::json settings_of(const Daemon& d, const std::string& name) {
  const nlohmann::json p = d.port(name);
  if (p.is_null()) return p;
  return {{"name", p["name"]}, {"type", p["type"]}, {"origin", p["origin"]}, {"mtu", p["mtu"]},
          {"mtu_source", p["mtu_source"]}, {"vlan", p["vlan"]}, {"vlan_mode", p["vlan_mode"]}, {"trunks", p["trunks"]}};
}

nlohmann::json add(const Daemon& d, nlohmann::json request) {
  request["cmd"] = "add_port";
  const nlohmann::json r = ctl(d, request);
  REQUIRE_MESSAGE(!r.contains("error"), r.dump());
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A directory the test owns (the state file given with --state-file lives there).
struct TestDir {
  std::string path = "/tmp/vusw-state-it-" + std::to_string(::getpid());
  TestDir() { std::filesystem::create_directories(path); }
  ~TestDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("ports added at run time come back after a restart, with their names and options, and switch") {
  DaemonConfig cfg;
  cfg.servers = {"a"};
  Daemon d(cfg);
  const nlohmann::json b = add(d, {{"type", "vhost-user"}, {"target", d.socket_path("b")}, {"mtu", 9000}});
  CHECK(b["persisted"] == true);
  add(d, {{"type", "nic"}, {"target", "net_null3,no-rx=1"}, {"name", "n3"}, {"vlan_mode", "trunk"}, {"trunks", "10,20"}});
  add(d, {{"type", "vxlan"}, {"target", "vx9,local=10.9.0.1,remote=10.9.0.2,vni=9,underlay=up9"},
          {"underlay", "net_null8,no-rx=1"}, {"vlan", 4}});
  const std::vector<std::string> names = {"a", "b", "n3", "vx9"};
  std::vector<nlohmann::json> before;
  for (const auto& name : names) before.push_back(settings_of(d, name));
  CHECK(before[0]["origin"] == "config");
  CHECK(before[1]["origin"] == "runtime");
  CHECK(before[3]["vlan"] == 4);
  CHECK(has(run_ctl(d, "show ports").out, "ORIGIN"));
  CHECK(has(run_ctl(d, "show port b").out, "runtime (add-port; restored when vuswitchd restarts)"));
  CHECK(has(run_ctl(d, "show config").out, "state-file = " + d.run_dir() + "/ports.json"));

  const std::string file = d.run_dir() + "/ports.json";
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const nlohmann::json recorded = nlohmann::json::parse(read_text(file));
  CHECK(recorded["version"] == 1);
  CHECK(recorded["ports"].size() == 3);

  REQUIRE(d.restart() == 0);
  for (size_t i = 0; i < names.size(); ++i) CHECK(settings_of(d, names[i]) == before[i]);
  CHECK(has(d.log(), "3 of 3 ports added at run time restored"));
  CHECK(read_text(file) == recorded.dump() + "\n");  // the same file, rewritten as it was

  // The restored vhost-user port listens again and switches.
  auto ga = attach(d, "a");
  auto gb = attach(d, "b");
  REQUIRE(ga);
  REQUIRE(gb);
  CHECK(learned_pair(*ga, kMacA, *gb, kMacB));
  gb.reset();

  // del_port forgets a port: it does not come back; the others do again.
  CHECK(ctl(d, {{"cmd", "del_port"}, {"port", "n3"}})["removed"] == true);
  CHECK(nlohmann::json::parse(read_text(file))["ports"].size() == 2);
  ga.reset();
  REQUIRE(d.restart() == 0);
  CHECK(d.port("n3").is_null());
  CHECK(settings_of(d, "b") == before[1]);
  CHECK(settings_of(d, "vx9") == before[3]);
  finish(d);
}

TEST_CASE("a state file that cannot be read is moved aside; a recorded port whose name is configured now is left out") {
  TestDir dir;
  const std::string file = dir.path + "/ports.json";
  DaemonConfig cfg;
  cfg.servers = {"a"};
  cfg.extra_args = {"--state-file", file};

  SUBCASE("corrupt: moved to ports.json.bad, the daemon starts and records anew") {
    std::ofstream(file) << "{\"version\":1,\"ports\":[{\"name\":";
    Daemon d(cfg);
    CHECK(has(d.log(), "state file " + file + ": not a JSON object; it is moved to " + file + ".bad"));
    CHECK(read_text(file + ".bad") == "{\"version\":1,\"ports\":[{\"name\":");
    CHECK(ctl(d, {{"cmd", "show_ports"}})["ports"].size() == 1);
    add(d, {{"type", "vhost-user"}, {"target", dir.path + "/c.sock"}});
    CHECK(nlohmann::json::parse(read_text(file))["ports"][0]["name"] == "c");
    finish(d);
  }

  SUBCASE("a newer format: moved aside, saying so") {
    std::ofstream(file) << "{\"version\":2,\"ports\":[]}";
    Daemon d(cfg);
    CHECK(has(d.log(), "format version 2, this vuswitchd reads version 1 (a newer vuswitchd wrote it)"));
    CHECK(std::filesystem::exists(file + ".bad"));
    finish(d);
  }

  SUBCASE("a name clash with a configured port: the configured one stays, the other is left out") {
    const nlohmann::json other = {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", dir.path + "/other.sock"},
                                  {"name", "a"}};
    const nlohmann::json ok = {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", dir.path + "/ok.sock"}};
    std::ofstream(file) << nlohmann::json{{"version", 1}, {"ports", {{{"name", "a"}, {"request", other}},
                                                                     {{"name", "ok"}, {"request", ok}}}}}.dump();
    Daemon d(cfg);
    CHECK(has(d.log(), "port a (added at run time) not restored: a configured port (command line or --config) has its "
                       "name now; the configured one stays"));
    CHECK(has(d.log(), "1 of 2 ports added at run time restored"));
    CHECK(d.port("a")["path"] == d.socket_path("a"));
    CHECK(d.port("a")["origin"] == "config");
    CHECK(d.port("ok")["origin"] == "runtime");
    const nlohmann::json now = nlohmann::json::parse(read_text(file));
    REQUIRE(now["ports"].size() == 1);
    CHECK(now["ports"][0]["name"] == "ok");
    finish(d);
  }
}

}  // namespace vusw::it
