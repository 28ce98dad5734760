// The control socket against clients that misbehave: bytes that are not UTF-8, a client
// that dribbles its request, one that says nothing, one that never ends its line, and
// more connections than the cap. None of them may stop the daemon or delay anyone else:
// not another vuswitchctl, not a vhost-user front-end (both served by the control thread).
// README "Control socket protocol".
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

UniqueFd connect_control(const Daemon& d) {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, d.control_path().c_str());
  REQUIRE(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return s;
}

bool send_text(const UniqueFd& s, const std::string& text) {
  return ::send(s.get(), text.data(), text.size(), MSG_NOSIGNAL) == ssize_t(text.size());
}

// What the daemon sends until it closes the connection (or `limit` passes).
std::string reply_of(const UniqueFd& s, milliseconds limit = milliseconds(8000)) {
  timeval tv{limit.count() / 1000, (limit.count() % 1000) * 1000};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string reply;
  char buf[4096];
  ssize_t got;
  while ((got = ::recv(s.get(), buf, sizeof(buf), 0)) > 0) reply.append(buf, size_t(got));
  return reply;
}

nlohmann::json json_of(const std::string& reply) {
  auto j = nlohmann::json::parse(reply, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), reply);
  CHECK(j["version"] == 1);
  return j;
}

// Milliseconds a version request takes from connect to reply.
long version_ms(const Daemon& d) {
  const auto t0 = Clock::now();
  auto r = d.ctl({{"cmd", "version"}});
  REQUIRE(r);
  CHECK((*r)["daemon"] == "vuswitchd");
  return long(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count());
}

nlohmann::json control_stats(const Daemon& d) {
  auto r = d.ctl({{"cmd", "version"}});
  REQUIRE(r);
  REQUIRE_MESSAGE(r->contains("control_socket"), r->dump());
  return (*r)["control_socket"];
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("control socket: requests that are not UTF-8 are answered bad_request; the daemon goes on") {
  Bench bench;
  for (const std::string& raw : std::vector<std::string>{"{\"cmd\":\"\xff\"}\n", "{\"cmd\":\"show_port\",\"port\":\"a\xc3\"}\n", "\xff\xfe\n",
                                "{\"cmd\":\"add_port\",\"type\":\"vhost-user\",\"target\":\"/tmp/\xff\"}\n"}) {
    CAPTURE(raw);
    UniqueFd s = connect_control(bench.d);
    REQUIRE(send_text(s, raw));
    const nlohmann::json j = json_of(reply_of(s));
    CHECK(j["error"]["code"] == "bad_request");
    REQUIRE(bench.d.alive());
  }
  CHECK(version_ms(bench.d) < 1000);
  // vuswitchctl with such an argument: the daemon's answer, not an uncaught exception.
  const CtlRun r = run_ctl(bench.d, "show port \"$(printf 'a\\377')\"");
  CHECK_MESSAGE(r.status == 1, r.err);
  CHECK(has(r.err, "no_such_port"));
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("control socket: a dribbling and a silent client delay no one; both are dropped at their deadline") {
  Bench bench;
  Daemon& d = bench.d;
  UniqueFd silent = connect_control(d);
  UniqueFd dribbler = connect_control(d);
  std::atomic<bool> stop{false};
  std::thread dribble([&] {  // one byte of a request every 300 ms, never the newline
    const std::string request = R"({"cmd":"show_ports"})";
    for (size_t i = 0; !stop && i < request.size(); ++i) {
      (void)send_text(dribbler, request.substr(i, 1));
      std::this_thread::sleep_for(milliseconds(300));
    }
  });
  std::this_thread::sleep_for(milliseconds(200));
  // The old control thread sat in a 1 s poll per byte of one client: these waited.
  for (int i = 0; i < 5; ++i) CHECK(version_ms(d) < 800);  // the old way: until the dribbler is done (6 s)
  const auto t0 = Clock::now();
  CHECK(bench.a->sync());  // a vhost-user round trip (GET_FEATURES) on the same thread
  CHECK(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count() < 800);
  auto spare = handshaken(d, "x");  // a whole vhost-user handshake, too
  CHECK(spare);
  CHECK(control_stats(d)["open"] == 3);  // the silent, the dribbling and the asking one

  // 5 s after connecting, both get an error line and are closed.
  const nlohmann::json late = json_of(reply_of(silent));
  CHECK(late["error"]["code"] == "bad_request");
  CHECK(has(late["error"]["message"].get<std::string>(), "no complete request line within 5 s"));
  CHECK(json_of(reply_of(dribbler))["error"]["code"] == "bad_request");
  stop = true;
  dribble.join();
  const nlohmann::json stats = control_stats(d);
  CHECK(stats["dropped"]["timeout"] == 2);
  CHECK(stats["open"] == 1);
  CHECK(count_of(d.log(), "control socket: dropped a connection: no complete request line within 5 s") == 1);  // once
  const CtlRun version = run_ctl(d, "version");
  CHECK_MESSAGE(has(version.out, "control socket: 1 open; dropped: 2 timeout, 0 too_long, 0 busy"), version.out);
  CHECK(bench.healthy());
  finish(d);
}

TEST_CASE("control socket: a line without end is cut at 64 KiB; more than 64 connections are refused") {
  Bench bench;
  Daemon& d = bench.d;
  UniqueFd endless = connect_control(d);
  const std::string chunk(4096, ' ');
  for (int i = 0; i < 17; ++i)
    if (!send_text(endless, chunk)) break;  // the daemon may close it while we write
  const nlohmann::json cut = json_of(reply_of(endless));
  CHECK(cut["error"]["code"] == "bad_request");
  CHECK(has(cut["error"]["message"].get<std::string>(), "no newline in the first 65536 bytes"));
  CHECK(control_stats(d)["dropped"]["too_long"] == 1);

  std::vector<UniqueFd> idle;
  for (int i = 0; i < 64; ++i) idle.push_back(connect_control(d));
  std::this_thread::sleep_for(milliseconds(300));  // all accepted
  UniqueFd refused = connect_control(d);  // the cap is full of idle clients
  const nlohmann::json busy = json_of(reply_of(refused, milliseconds(2000)));
  CHECK(busy["error"]["code"] == "busy");
  idle.clear();
  CHECK(wait_until([&] { auto r = d.ctl({{"cmd", "version"}}); return r && r->contains("control_socket"); },
                   milliseconds(2000)));
  const nlohmann::json stats = control_stats(d);
  CHECK(stats["open"] == 1);  // the asking one
  CHECK(stats["dropped"]["busy"] >= 1);
  CHECK(version_ms(d) < 800);
  CHECK(d.alive());
  finish(d);
}

}  // namespace vusw::it
