// Hostile text on the two ways into the daemon's configuration: command-line and config
// file (Boost placeholders, socket paths that make no port name), and control-socket
// request lines answered without a socket (Management::answer). Each case is a bug that
// once hung vuswitchd at start-up or killed it from the control socket.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/event_loop.h"
#include "control/management.h"
#include "control/port_state.h"
#include "control/scheduler.h"
#include "tests/unit/config_args.h"
#include "vusw/fdb.h"

using namespace vusw;
using namespace vusw::test;

namespace {

// A Management with no ports, no PMD cores and no socket: answer() only.
struct Answering {
    EventLoop loop;
    std::vector<Port*> ports;
    std::vector<Pmd*> pmds;
    Fdb fdb{64};
    Scheduler scheduler{ports, pmds, std::chrono::seconds(0), 25};
    Config config = parse({})->config;
    PortState state{""};  // no file
    Management m{"/nonexistent/ctl", loop, ports, fdb, pmds, scheduler, config, PortControl{}, state};

    nlohmann::json answer(std::string_view line)
    {
        const std::string text = m.answer(line);
        REQUIRE(!text.empty());
        CHECK(text.back() == '\n');
        CHECK(text.find('\n') == text.size() - 1);  // one line
        auto j = nlohmann::json::parse(text, nullptr, false);  // valid JSON and UTF-8
        REQUIRE_MESSAGE(!j.is_discarded(), text);
        CHECK(j["version"] == kProtocolVersion);
        return j;
    }
};

}  // namespace

// Boost.Program_options 1.74 replaces `%canonical_option%`, `%value%`... in its error
// templates until none is left; with the option or value itself such a placeholder that
// never ends. These return at once with our message: nothing reached Boost.
TEST_CASE("config: text between two % that Boost would loop on is refused before Boost sees it")
{
    CHECK(boost_placeholder("%canonical_option%") == "%canonical_option%");
    CHECK(boost_placeholder("/tmp/%value%.sock") == "%value%");
    CHECK(boost_placeholder("50%, 60% and %x%") == "%x%");
    CHECK_FALSE(boost_placeholder("/tmp/100%.sock"));
    CHECK_FALSE(boost_placeholder("%%"));
    CHECK_FALSE(boost_placeholder("%A1%"));

    const std::string arg = error_of({"--memory", "%value%"});
    CHECK(arg.find("argument 2: `%value%` cannot be read") != std::string::npos);
    CHECK(arg.find("remove or rename it") != std::string::npos);
    CHECK(error_of({"--%canonical_option%"}).find("argument 1") != std::string::npos);

    for (const char* line : {"%canonical_option% = 1\n", "memory = %value%\n", "[%canonical_option%]\nx = 1\n",
                             "vhost-user = /tmp/%foo%.sock\n"}) {
        CAPTURE(line);
        TempFile f(std::string("# comment\n") + line);
        const std::string e = error_of({"--config", f.path.c_str()});
        CHECK(e.find(f.path + " line 2: `") != std::string::npos);
    }
    // A lone % (or two with no name between them) is ordinary text.
    TempFile ok("vhost-user = /tmp/100%.sock|name=a\nvhost-user = /tmp/a%%b.sock|name=b\n");
    auto r = parse({"--config", ok.path.c_str()});
    REQUIRE_MESSAGE(r, r.error().detail);
    CHECK(r->config.vhost_server.at(0).target == "/tmp/100%.sock");
    TempFile empty("");
    CHECK(parse({"--config", empty.path.c_str()}).has_value());
}

TEST_CASE("config: a socket path that makes no port name is refused, naming the way out")
{
    const std::string dir = error_of({"--vhost-user", "/tmp/x/"});
    CHECK(dir.find("--vhost-user /tmp/x/: `/tmp/x/` names a directory") != std::string::npos);
    CHECK(dir.find("/tmp/x/vm1.sock") != std::string::npos);
    CHECK(error_of({"--vhost-user-client", "/tmp/x/|name=vm"}).find("names a directory") != std::string::npos);
    TempFile f("vhost-user = /run/vm/\n");
    CHECK(error_of({"--config", f.path.c_str()}).find("names a directory") != std::string::npos);

    CHECK(error_of({"--vhost-user", "/tmp/a b.sock"}).find("the socket file name `a b` does not make a port name") !=
          std::string::npos);
    CHECK(error_of({"--vhost-user", "/tmp/\xff.sock"}).find("|name=NAME") != std::string::npos);
    CHECK(error_of({"--nic", "net tap0,iface=x"}).find("the devargs name `net tap0`") != std::string::npos);
    // The way out works.
    auto named = parse({"--vhost-user", "/tmp/a b.sock|name=ab"});
    REQUIRE(named);
    CHECK(named->config.vhost_server.at(0).name == "ab");
    // add_port at run time goes through the same parse_port_spec.
    CHECK_FALSE(parse_port_spec("vhost-user", "/tmp/x/", false));
}

TEST_CASE("control: a request that is not UTF-8 is answered bad_request, and the next one still is")
{
    Answering a;
    const std::vector<std::string> lines = {"{\"cmd\":\"\xff\"}", "{\"cmd\":\"show_port\",\"port\":\"a\xc3\"}",
                                            "\xff\xfe", "{\"cmd\":\"ver\xed\xa0\x80sion\"}",
                                            std::string("{\"cmd\":\"\0\"}", 11)};
    for (const std::string& line : lines) {
        CAPTURE(line);
        const nlohmann::json j = a.answer(line);
        CHECK(j["error"]["code"] == "bad_request");
        CHECK(j["error"]["message"].get<std::string>().find("not a JSON object") != std::string::npos);
    }
    CHECK(a.answer("{\"cmd\":\"version\"}")["daemon"] == "vuswitchd");
    // Valid UTF-8 beyond ASCII passes through as it is.
    const nlohmann::json j = a.answer("{\"cmd\":\"show_port\",\"port\":\"caf\xc3\xa9\"}");
    CHECK(j["error"]["code"] == "no_such_port");
    CHECK(j["error"]["message"].get<std::string>().find("caf\xc3\xa9") != std::string::npos);
}

TEST_CASE("control: a command that throws is a `failed` reply, not the end of the daemon")
{
    Answering a;
    // PortControl{} has no functions: calling one throws std::bad_function_call.
    const nlohmann::json j = a.answer(R"({"cmd":"reload"})");
    CHECK(j["error"]["code"] == "failed");
    CHECK(j["error"]["message"].get<std::string>().find("the request failed") != std::string::npos);
    CHECK(a.answer(R"({"cmd":"add_port","type":"vhost-user","target":"/tmp/x/"})")["error"]["code"] == "bad_argument");
}
