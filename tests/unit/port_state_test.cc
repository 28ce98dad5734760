// The state file of the ports added at run time (control/port_state.h): its text both
// ways, what is refused, the file written whole with mode 0600, a bad file moved aside;
// --state-file.
#include "control/port_state.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "tests/unit/config_args.h"

using namespace vusw;

namespace {

const std::vector<RecordedPort> kPorts = {
    {"vm1", {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", "/run/vuswitch/vm1.sock"}, {"mtu", "9000"}}},
    {"n3", {{"cmd", "add_port"}, {"type", "nic"}, {"target", "net_null3,no-rx=1"}, {"name", "n3"}}},
    {"vx9", {{"cmd", "add_port"}, {"type", "vxlan"}, {"target", "vx9,local=10.0.0.1,remote=10.0.0.2,vni=9,underlay=u"},
             {"underlay", "net_null8"}, {"underlay_mtu", 9000}}},
};

bool has_substr(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

std::string error_of(std::string_view text)
{
    auto parsed = parse_port_state(text);
    REQUIRE_FALSE(parsed);
    return parsed.error().detail;
}

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A directory of its own, removed at the end.
struct TempDir {
    std::string path;
    TempDir()
    {
        char name[] = "/tmp/vusw-state-XXXXXX";
        REQUIRE(mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("state file: the ports and their add_port requests come back as they were written")
{
    const std::string text = serialise_port_state(kPorts);
    CHECK(text.back() == '\n');
    CHECK(nlohmann::json::parse(text)["version"] == kPortStateVersion);
    auto parsed = parse_port_state(text);
    REQUIRE(parsed);
    CHECK(*parsed == kPorts);
    auto none = parse_port_state(serialise_port_state({}));
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("state file: not JSON, another version or a foreign entry is refused, saying why")
{
    CHECK(error_of("") == "not a JSON object");
    CHECK(error_of("{\"version\":1,\"ports\":[") == "not a JSON object");
    CHECK(error_of("[1]") == "not a JSON object");
    CHECK(error_of("{\"ports\":[]}") == "no \"version\"");
    CHECK(error_of("{\"version\":\"1\",\"ports\":[]}") == "no \"version\"");
    CHECK(error_of("{\"version\":2,\"ports\":[]}") ==
          "format version 2, this vuswitchd reads version 1 (a newer vuswitchd wrote it)");
    CHECK(error_of("{\"version\":0,\"ports\":[]}") == "format version 0, this vuswitchd reads version 1");
    CHECK(error_of("{\"version\":1}") == "no \"ports\" list");
    CHECK(error_of("{\"version\":1,\"ports\":[{\"name\":\"a\"}]}") ==
          "ports[0] is not {\"name\":NAME,\"request\":{\"cmd\":\"add_port\",...}}");
    // Start-up hands each request to the control socket's handler: nothing but add_port.
    CHECK(has_substr(error_of(R"({"version":1,"ports":[{"name":"a","request":{"cmd":"add_port"}},
                                 {"name":"b","request":{"cmd":"del_port","port":"a"}}]})"),
                     "ports[1] is not"));
}

TEST_CASE("PortState: recorded, forgotten, written whole with mode 0600; a bad file is moved aside")
{
    TempDir dir;
    const std::string path = dir.path + "/sub/ports.json";  // its directory is made
    PortState state(path);
    auto none = state.take();
    REQUIRE(none);
    CHECK(none->empty());
    for (const RecordedPort& p : kPorts)
        REQUIRE(state.record(p.name, p.request));
    CHECK(state.recorded("n3"));
    REQUIRE(state.forget("n3"));
    REQUIRE(state.forget("not-recorded"));
    CHECK_FALSE(state.recorded("n3"));
    CHECK(read_text(path) == serialise_port_state({kPorts[0], kPorts[2]}));
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path + "/sub"), {}) == 1);  // no temporary left

    PortState again(path);
    auto restored = again.take();
    REQUIRE(restored);
    CHECK(*restored == std::vector<RecordedPort>{kPorts[0], kPorts[2]});
    CHECK_FALSE(again.recorded("vm1"));  // recorded again as each is added

    std::ofstream(path) << "{\"version\":1,\"ports\":[{";
    auto bad = PortState(path).take();
    REQUIRE_FALSE(bad);
    CHECK(has_substr(bad.error().detail, "state file " + path + ": not a JSON object; it is moved to " + path + ".bad"));
    CHECK(read_text(path + ".bad") == "{\"version\":1,\"ports\":[{");
    CHECK_FALSE(std::filesystem::exists(path));

    PortState memory_only("");
    REQUIRE(memory_only.record("vm1", kPorts[0].request));
    CHECK(memory_only.recorded("vm1"));
}

TEST_CASE("--state-file: RUN_DIR/ports.json by default, a FILE, or none")
{
    using test::parse;
    CHECK(parse({})->config.state_file == "/run/vuswitch/ports.json");
    CHECK(parse({"--run-dir", "/tmp/r"})->config.state_file == "/tmp/r/ports.json");
    CHECK(parse({"--state-file", "/var/lib/vuswitch/p.json"})->config.state_file == "/var/lib/vuswitch/p.json");
    CHECK(parse({"--state-file", "none"})->config.state_file.empty());
    test::TempFile file("state-file = none\n");
    CHECK(parse({"--config", file.path.c_str()})->config.state_file.empty());
    CHECK(has_substr(test::error_of({"--state-file", ""}), "expected a FILE, or none"));
    CHECK(has_substr(test::error_of({"--state-file", "/tmp/"}), "expected a FILE, or none"));
}

TEST_CASE("state file: a port forgotten while no daemon runs (the CNI plugin's DEL)")
{
    TempDir dir;
    const std::string path = dir.path + "/ports.json";
    CHECK(forget_recorded_port(path, "vm1"));  // no file: nothing to do, and none made
    CHECK_FALSE(std::filesystem::exists(path));
    {
        PortState state(path);
        for (const RecordedPort& p : kPorts)
            REQUIRE(state.record(p.name, p.request));
    }
    REQUIRE(forget_recorded_port(path, "n3"));
    auto left = parse_port_state(read_text(path));
    REQUIRE(left);
    CHECK(*left == std::vector<RecordedPort>{kPorts[0], kPorts[2]});
    const std::string before = read_text(path);
    CHECK(forget_recorded_port(path, "n3"));  // not there (any more): unchanged
    CHECK(read_text(path) == before);
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    std::ofstream(path) << "{\"version\":1,\"ports\":[";  // cut short: left as it is, and said
    auto bad = forget_recorded_port(path, "vm1");
    REQUIRE_FALSE(bad);
    CHECK(has_substr(bad.error().detail, path));
    CHECK(read_text(path) == "{\"version\":1,\"ports\":[");
}

TEST_CASE("state file: while held (start-up restoring), changes are written once, at release")
{
    TempDir dir;
    const std::string path = dir.path + "/ports.json";
    PortState state(path);
    state.hold();
    for (const RecordedPort& p : kPorts)
        REQUIRE(state.record(p.name, p.request));
    REQUIRE(state.forget("n3"));
    CHECK_FALSE(std::filesystem::exists(path));
    REQUIRE(state.release());
    auto written = parse_port_state(read_text(path));
    REQUIRE(written);
    CHECK(*written == std::vector<RecordedPort>{kPorts[0], kPorts[2]});
    REQUIRE(state.forget("vm1"));  // released: written at once again
    written = parse_port_state(read_text(path));
    REQUIRE(written);
    CHECK(*written == std::vector<RecordedPort>{kPorts[2]});
}
