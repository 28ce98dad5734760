// The operator's views and knobs against a running daemon: every control-socket
// command (JSON), the same through the vuswitchctl binary (human output, --json and
// its exit codes), clear_stats against /metrics, journald-style log lines and the
// per-key log rate limit. README "vuswitchctl" and "Control socket protocol".
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;


size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

nlohmann::json show_port(const Daemon& d, const std::string& name) {
  auto r = ctl(d, {{"cmd", "show_port"}, {"port", name}});
  REQUIRE_MESSAGE(r.contains("port"), r.dump());
  return r["port"];
}

uint64_t sum_turns(const nlohmann::json& pmd) {
  uint64_t n = 0;
  for (const auto& t : pmd["packets_per_turn"]["turns"]) n += t.get<uint64_t>();
  return n;
}

}  // namespace

TEST_CASE("control protocol: a version in every reply, errors with stable codes") {
  Bench bench;
  const Daemon& d = bench.d;
  auto v = ctl(d, {{"cmd", "version"}});
  CHECK(v["protocol_version"] == 1);
  CHECK(v["daemon"] == "vuswitchd");
  CHECK(v["daemon_version"].is_string());

  auto unknown = ctl(d, {{"cmd", "frobnicate"}});
  CHECK(unknown["error"]["code"] == "unknown_command");
  CHECK(has(unknown["error"]["message"].get<std::string>(), "show_port"));  // lists what is known
  CHECK(ctl(d, {{"port", "a"}})["error"]["code"] == "bad_request");         // no cmd
  CHECK(ctl(d, nlohmann::json::array({1, 2}))["error"]["code"] == "bad_request");
  CHECK(ctl(d, {{"cmd", "show_port"}, {"port", "nope"}})["error"]["code"] == "no_such_port");
  CHECK(ctl(d, {{"cmd", "show_port"}, {"port", 7}})["error"]["code"] == "bad_argument");
  CHECK(ctl(d, {{"cmd", "set_log_level"}, {"level", "loud"}})["error"]["code"] == "bad_argument");

  // A line that is not JSON at all.
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, d.control_path().c_str());
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  const std::string junk = "show ports\n";
  REQUIRE(::send(s.get(), junk.data(), junk.size(), MSG_NOSIGNAL) == ssize_t(junk.size()));
  std::string reply;
  char buf[4096];
  ssize_t got;
  while ((got = ::recv(s.get(), buf, sizeof(buf), 0)) > 0) reply.append(buf, size_t(got));
  auto j = nlohmann::json::parse(reply, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), reply);
  CHECK(j["error"]["code"] == "bad_request");
  CHECK(j["version"] == 1);
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("show_port: features, rings with state, position and PMD, memory regions, last errors") {
  Bench bench;
  const Daemon& d = bench.d;
  auto before = show_port(d, "a");
  REQUIRE(exchange(*bench.a, kMacA, *bench.b, kMacB, 40).completed);
  auto p = show_port(d, "a");
  INFO(p.dump());
  CHECK(p["name"] == "a");
  CHECK(p["type"] == "vhost-user");
  CHECK(p["state"] == "ready");
  CHECK(p["mtu"] == 1500);
  CHECK(p["rx_packets"].get<uint64_t>() == before["rx_packets"].get<uint64_t>() + 40);
  CHECK(p["tx_packets"].get<uint64_t>() == before["tx_packets"].get<uint64_t>() + 40);
  CHECK(p["drops"].is_object());
  bool version_1 = false;
  for (const auto& f : p["features"]) version_1 |= f == "VERSION_1";
  CHECK(version_1);
  CHECK(p["protocol_features"].is_array());
  CHECK(p["messages"].value("SET_FEATURES", 0) >= 1);

  REQUIRE(p["queues"].size() >= 1);
  const auto& q = p["queues"][0];
  CHECK(q["pair"] == 0);
  CHECK(q["pmd"] == 0);
  for (const char* side : {"rx", "tx"}) {
    CAPTURE(side);
    CHECK(q[side]["state"] == "enabled");
    CHECK(q[side]["size"].get<unsigned>() > 0);
    CHECK(q[side]["fault"].is_null());
    REQUIRE(q[side]["last_avail"].is_number());
    REQUIRE(q[side]["used"].is_number());
  }
  // The guest TX ring (tx) took at least the frames a sent, and used all it took.
  const auto& b0 = before["queues"][0]["tx"];
  CHECK(uint16_t(q["tx"]["last_avail"].get<unsigned>() - b0["last_avail"].get<unsigned>()) >= 40);
  CHECK_MESSAGE(wait_until(
                    [&] {
                      const auto t = show_port(d, "a")["queues"][0]["tx"];
                      return t["used"] == t["last_avail"];
                    },
                    milliseconds(2000)),
                "the guest TX ring did not publish all it took as used");
  CHECK(uint16_t(q["rx"]["used"].get<unsigned>() - before["queues"][0]["rx"]["used"].get<unsigned>()) >= 40);

  REQUIRE(p["memory_regions"].size() == p["mem_regions"].get<size_t>());
  REQUIRE(!p["memory_regions"].empty());
  const auto& r = p["memory_regions"][0];
  CHECK(r["gpa"].get<std::string>().starts_with("0x"));
  CHECK(r["uva"].get<std::string>().starts_with("0x"));
  CHECK(r["size"].get<uint64_t>() > 0);
  CHECK(r["dma"].is_boolean());
  CHECK(p["dirty_log"]["enabled"] == false);
  CHECK(p["last_errors"].empty());

  // A front-end error is kept with its time, reason and detail.
  auto fe = handshaken(d, "x");
  REQUIRE(fe);
  CHECK(fe->set_vring_num(200, 256).failed());
  auto x = show_port(d, "x");
  REQUIRE(x["last_errors"].size() == 1);
  CHECK(x["last_errors"][0]["time"].get<std::string>().ends_with("Z"));
  CHECK(x["last_errors"][0]["reason"].get<std::string>() != "");
  CHECK(has(x["last_errors"][0]["detail"].get<std::string>(), "200"));
  CHECK(x["protocol_errors"][x["last_errors"][0]["reason"].get<std::string>()] == 1);
  // Only the last few are kept.
  for (int i = 0; i < 20; ++i) CHECK(fe->set_vring_num(300 + i, 256).failed());
  x = show_port(d, "x");
  CHECK(x["last_errors"].size() == 8);
  CHECK(has(x["last_errors"][7]["detail"].get<std::string>(), "319"));

  // The same through vuswitchctl, human and JSON.
  CtlRun h = run_ctl(d, "show port a");
  CHECK(h.status == 0);
  INFO(h.out);
  CHECK(has(h.out, "a (vhost-user): ready"));
  CHECK(has(h.out, "VERSION_1"));
  CHECK(has(h.out, "pair 0 on pmd 0"));
  CHECK(has(h.out, "rx enabled size"));
  CHECK(has(h.out, "  gpa 0x"));
  CtlRun hx = run_ctl(d, "show port x");
  CHECK(has(hx.out, "319"));
  CtlRun js = run_ctl(d, "--json show port a");
  CHECK(js.status == 0);
  auto parsed = nlohmann::json::parse(js.out, nullptr, false);
  REQUIRE(!parsed.is_discarded());
  CHECK(parsed["port"]["name"] == "a");
  CtlRun missing = run_ctl(d, "show port nope");
  CHECK(missing.status == 1);
  CHECK(has(missing.err, "no_such_port: no port named `nope`"));
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("show_pmd: packets-per-turn histogram and cycles per packet") {
  Bench bench;
  const Daemon& d = bench.d;
  REQUIRE(exchange(*bench.a, kMacA, *bench.b, kMacB, 200).completed);
  auto r = ctl(d, {{"cmd", "show_pmd"}});
  REQUIRE(r["pmds"].size() == 1);
  auto p = r["pmds"][0];
  INFO(p.dump());
  const auto& le = p["packets_per_turn"]["le"];
  const auto& turns = p["packets_per_turn"]["turns"];
  REQUIRE(turns.size() == le.size() + 1);
  CHECK(le[0] == 0);
  // Every turn is in one bucket (turns keep going between the two reads: at least as many).
  CHECK(sum_turns(p) >= p["iterations"].get<uint64_t>());
  uint64_t busy_turns = 0;
  for (size_t b = 1; b < turns.size(); ++b) busy_turns += turns[b].get<uint64_t>();
  CHECK(busy_turns > 0);
  CHECK(turns[0].get<uint64_t>() > 0);  // an idle core turns with nothing
  CHECK(p["packets"].get<uint64_t>() >= 400);
  REQUIRE(p["cycles_per_packet"].is_number());
  CHECK(p["cycles_per_packet"].get<double>() > 0);
  CHECK(p["cycles_per_packet"].get<double>() ==
        doctest::Approx(p["busy_cycles"].get<double>() / p["packets"].get<double>()).epsilon(0.01));

  CtlRun h = run_ctl(d, "show pmd");
  CHECK(h.status == 0);
  INFO(h.out);
  CHECK(has(h.out, "CYC/PKT"));
  CHECK(has(h.out, "packets per turn: 0:"));
  CHECK(has(h.out, ">64:"));
  CHECK(has(h.out, "port a"));
  finish(bench.d);
}

TEST_CASE("clear_stats: the views count from zero, /metrics counters go on") {
  Bench bench;
  const Daemon& d = bench.d;
  REQUIRE(exchange(*bench.a, kMacA, *bench.b, kMacB, 30).completed);
  auto m0 = d.scrape();
  REQUIRE(m0);
  const double metric_before = m0->sum("vusw_port_rx_packets_total", {{"port", "a"}});
  REQUIRE(metric_before >= 30);

  CtlRun c = run_ctl(d, "clear stats");
  CHECK(c.status == 0);
  CHECK(has(c.out, "statistics cleared"));
  auto a0 = show_port(d, "a");
  CHECK(a0["rx_packets"] == 0);
  CHECK(a0["tx_packets"] == 0);
  CHECK(a0["rx_bytes"] == 0);
  CHECK(a0["queues"][0]["rx_packets"] == 0);
  CHECK(a0["messages"].empty());
  CHECK(a0["counters_since"].is_string());
  CHECK(a0["mtu"] == 1500);                  // a gauge, not a counter
  CHECK(a0["mem_regions"].get<uint64_t>() > 0);
  CHECK(d.port("a")["rx_packets"] == 0);     // show_ports too

  REQUIRE(exchange(*bench.a, kMacA, *bench.b, kMacB, 25).completed);
  auto a1 = show_port(d, "a");
  CHECK(a1["rx_packets"] == 25);
  CHECK(a1["tx_packets"] == 25);
  CHECK(a1["queues"][0]["rx_packets"] == 25);
  auto pmd = ctl(d, {{"cmd", "show_pmd"}})["pmds"][0];
  CHECK(pmd["packets"].get<uint64_t>() >= 50);
  CHECK(pmd["packets"].get<uint64_t>() < 50 + 30);  // counted from the clear, not from start
  // Turns since the clear (the core turns between a snapshot's reads: no exact relation to
  // `iterations` after subtracting two snapshots).
  CHECK(sum_turns(pmd) > 0);

  auto m1 = d.scrape();
  REQUIRE(m1);
  CHECK(m1->sum("vusw_port_rx_packets_total", {{"port", "a"}}) == metric_before + 25);  // monotonic
  // The turns since the clear are fewer than /metrics' turns since start.
  CHECK(double(sum_turns(pmd)) < m1->sum("vusw_pmd_iteration_seconds_count", {{"pmd", "0"}}));
  CHECK(m0->sum("vusw_pmd_iteration_seconds_count", {{"pmd", "0"}}) > 0);
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("set_log_level, show_config and version, through the socket and vuswitchctl") {
  Bench bench;
  const Daemon& d = bench.d;
  auto cfg = ctl(d, {{"cmd", "show_config"}})["config"];
  INFO(cfg.dump());
  REQUIRE(cfg["ports"].size() == 3);
  CHECK(cfg["ports"][0]["name"] == "a");
  CHECK(cfg["ports"][0]["flag"] == "vhost-user");
  CHECK(cfg["ports"][0]["target"] == d.socket_path("a"));
  CHECK(cfg["control"] == d.control_path());
  CHECK(cfg["metrics"] == "127.0.0.1:" + std::to_string(d.metrics_port()));
  CHECK(cfg["log_level"] == "info");
  CHECK(cfg["user"].is_null());  // no --user: stays root
  CHECK(cfg["socket_mode"] == "0660");
  CHECK(cfg["ctl_socket_mode"] == "0660");
  struct stat st {};
  REQUIRE(stat(d.control_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0660);  // --ctl-socket-mode's default, whatever the umask
  REQUIRE(stat(d.socket_path("a").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0660);

  CtlRun set = run_ctl(d, "set log-level debug");
  CHECK(set.status == 0);
  CHECK(has(set.out, "log level debug (was info)"));
  CHECK(ctl(d, {{"cmd", "show_config"}})["config"]["log_level"] == "debug");
  CHECK(wait_until([&] { return has(d.log(), "log level debug (was info)"); }, milliseconds(2000)));
  // Debug lines appear from now on: a new front-end's messages are logged at debug.
  const size_t debug_before = count_of(d.log(), ": debug: ");
  auto fe = attach(d, "x");
  REQUIRE(fe);
  CHECK(wait_until([&] { return count_of(d.log(), ": debug: ") > debug_before; }, milliseconds(2000)));
  CHECK(run_ctl(d, "set log-level info").status == 0);

  CtlRun conf = run_ctl(d, "show config");
  CHECK(conf.status == 0);
  INFO(conf.out);
  CHECK(has(conf.out, "vhost-user = " + d.socket_path("a") + "|name=a"));
  CHECK(has(conf.out, "control = " + d.control_path()));
  CHECK(has(conf.out, "log-level = info"));
  CHECK(has(conf.out, "ctl-socket-mode = 0660"));
  CHECK_FALSE(has(conf.out, "\nuser ="));

  CtlRun ver = run_ctl(d, "version");
  CHECK(ver.status == 0);
  CHECK(has(ver.out, "vuswitchd 0."));
  CHECK(has(ver.out, "control protocol 1"));
  auto vj = nlohmann::json::parse(run_ctl(d, "--json version").out, nullptr, false);
  REQUIRE(!vj.is_discarded());
  CHECK(vj["protocol_version"] == 1);
  finish(bench.d);
}

TEST_CASE("vuswitchctl: every verb answers, exit codes 0, 1, 2, 3") {
  Bench bench;
  const Daemon& d = bench.d;
  for (const char* verb : {"show ports", "show port a", "show pmd", "show fdb", "show config", "clear stats",
                           "version", "rebalance", "pin a 0", "unpin a", "set log-level info"}) {
    CAPTURE(verb);
    CtlRun h = run_ctl(d, verb);
    CHECK_MESSAGE(h.status == 0, h.err);
    CHECK(!h.out.empty());
    CtlRun j = run_ctl(d, std::string("--json ") + verb);
    CHECK_MESSAGE(j.status == 0, j.err);
    auto parsed = nlohmann::json::parse(j.out, nullptr, false);
    CHECK_MESSAGE(!parsed.is_discarded(), j.out);
    CHECK(parsed["version"] == 1);
  }
  CHECK(has(run_ctl(d, "show fdb").out, "02:00:00:00:00:0a"));
  CHECK(has(run_ctl(d, "show ports").out, "PORT"));

  // 1: the daemon said no.
  CtlRun no = run_ctl(d, "pin nope 0");
  CHECK(no.status == 1);
  CHECK(has(no.err, "no_such_port"));
  CtlRun range = run_ctl(d, "pin a 9");
  CHECK(range.status == 1);
  CHECK(has(range.err, "bad_argument"));
  CtlRun json_err = run_ctl(d, "--json show port nope");
  CHECK(json_err.status == 1);
  CHECK(has(json_err.out, "\"code\": \"no_such_port\""));
  // 2: usage, nothing sent.
  for (const char* bad : {"", "show", "show ports extra", "show port", "frob", "pin a one", "set log-level loud",
                          "--bogus show ports", "--control"}) {
    CAPTURE(bad);
    CtlRun u = run_ctl(d, bad);
    CHECK(u.status == 2);
    CHECK(has(u.err, "Usage:"));
  }
  CtlRun help = run_ctl("--help");
  CHECK(help.status == 0);
  CHECK(has(help.out, "Exit status:"));
  for (const char* verb : {"show port NAME", "show config", "clear stats", "set log-level LEVEL", "version"})
    CHECK(has(help.out, verb));
  // 3: no daemon there.
  CtlRun gone = run_ctl("--control " + d.run_dir() + "/no-such.ctl show ports");
  CHECK(gone.status == 3);
  CHECK(has(gone.err, "cannot reach vuswitchd"));
  finish(bench.d);
}

TEST_CASE("bash completion: commands, and port names from the running daemon") {
  DaemonConfig cfg;
  cfg.servers = {"vm1", "vm2"};
  Daemon d(cfg);
  // The source tree: $VUSW_SOURCE_DIR (meson test sets it), else the current directory.
  const char* src = std::getenv("VUSW_SOURCE_DIR");
  const std::string completion = std::string(src != nullptr ? src : ".") + "/deploy/vuswitchctl.bash-completion";
  REQUIRE_MESSAGE(std::filesystem::exists(completion), completion);
  const auto complete = [&](const std::string& words, int cword) {
    const std::string script = "source " + completion + "; " +
                               "COMP_WORDS=(" + words + "); COMP_CWORD=" + std::to_string(cword) +
                               "; _vuswitchctl; echo \"${COMPREPLY[*]}\"";
    const std::string dir = std::filesystem::path(ctl_binary()).parent_path().string();
    FILE* p = ::popen(("PATH=" + dir + ":$PATH bash -c '" + script + "'").c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, got);
    ::pclose(p);
    return out;
  };
  const std::string ctl = "vuswitchctl --control " + d.control_path();
  CHECK(complete(ctl + " sh", 3) == "show\n");
  CHECK(complete(ctl + " show \"\"", 4) == "ports port pmd fdb config\n");
  CHECK(complete(ctl + " show port \"\"", 5) == "vm1 vm2\n");
  CHECK(complete(ctl + " pin v", 4) == "vm1 vm2\n");
  CHECK(complete(ctl + " set log-level d", 5) == "debug\n");
  CHECK(complete(ctl + " add-port \"\"", 4) == "vhost-user nic vxlan\n");
  CHECK(complete(ctl + " add-port vxlan vx1,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=u --u", 6) ==
        "--underlay --underlay-mtu\n");
  CHECK(complete(ctl + " add-port nic net_null0 --", 6) == "--name --mtu --vlan --vlan-mode --trunks\n");  // --client is for vhost-user ports
  CHECK(complete(ctl + " add-port vhost-user /tmp/x.sock --c", 6) == "--client\n");
  CHECK(complete("vuswitchctl --control /nonexistent show port \"\"", 5) == "\n");  // no daemon: nothing
  CHECK(d.stop() == 0);
}

TEST_CASE("logs: syslog priorities under journald, and a flooding front-end is rate limited") {
  ::setenv("JOURNAL_STREAM", "8:12345", 1);  // what systemd sets when stderr is the journal
  DaemonConfig cfg;
  cfg.servers = {"a", "x"};
  Daemon d(cfg);
  ::unsetenv("JOURNAL_STREAM");
  const std::string log = d.log();
  INFO(log);
  CHECK(has(log, "<6>control socket "));
  CHECK(has(log, "<5>vuswitchd: ready"));
  CHECK_FALSE(has(log, "vuswitchd: info: "));

  auto fe = handshaken(d, "x");
  REQUIRE(fe);
  for (int i = 0; i < 50; ++i) CHECK(fe->set_vring_num(200, 256).failed());
  auto x = show_port(d, "x");
  const std::string reason = x["last_errors"][0]["reason"];
  CHECK(x["protocol_errors"][reason] == 50);  // every one counted
  const std::string key = "port x: " + reason;
  CHECK(count_of(d.log(), "<4>port x: ") == 1);  // one logged
  // When the 10 s window ends: the rest in one line.
  CHECK(wait_until([&] { return has(d.log(), "<4>" + key + ": ... and 49 more suppressed"); }, milliseconds(13000)));
  CHECK(count_of(d.log(), "<4>port x: ") == 2);
  // A new window logs the first of the kind again.
  CHECK(fe->set_vring_num(200, 256).failed());
  CHECK(wait_until([&] { return count_of(d.log(), "<4>port x: ") == 3; }, milliseconds(2000)));
  CHECK(d.stop() == 0);
}

}  // namespace vusw::it
