// libFuzzer target: the control-socket protocol, one request line in, one reply line out
// (Management::answer: parse, handle, dump), with no socket and no daemon around it.
//
// Input: the request line's bytes. Whatever a vuswitchctl (or anything that can open the
// socket) sends must come back as exactly one line of valid JSON (valid UTF-8) with the
// protocol version, and an error, if any, with one of the stable codes. Nothing may throw
// out of answer() (that ended the daemon) and nothing may crash.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/fuzz/fuzz_support.h"
#include "control/config.h"
#include "control/event_loop.h"
#include "control/management.h"
#include "control/port_state.h"
#include "control/scheduler.h"
#include "vusw/fdb.h"
#include "vusw/log.h"

using vusw::fuzz::expect;

namespace {

// A daemon with no ports and no PMD cores: every command runs, those that need a port or a
// core answer with their error. Adding, removing and reloading ports fail as a daemon's
// would when the port cannot be made.
struct Stub {
    vusw::EventLoop loop;
    std::vector<vusw::Port*> ports;
    std::vector<vusw::Pmd*> pmds;
    vusw::Fdb fdb{64};
    vusw::Scheduler scheduler{ports, pmds, std::chrono::seconds(0), 25};
    vusw::Config config = [] {
        const char* argv[] = {"vuswitchd"};
        return vusw::parse_args(1, argv)->config;
    }();
    vusw::PortState state{""};  // no file: nothing is added anyway
    vusw::Management management{"/nonexistent/ctl", loop, ports, fdb, pmds, scheduler, config, control(), state};

    static vusw::PortControl control()
    {
        return {[](vusw::PortKind, const vusw::PortSpec& spec) -> vusw::Result<vusw::Port*> {
                    return vusw::fail("failed", "fuzz: cannot make port " + spec.name);
                },
                [](const std::string& name) -> vusw::Status { return vusw::fail("no_port", "fuzz: no port " + name); },
                []() -> vusw::Result<vusw::ReloadReport> { return vusw::ReloadReport{}; }};
    }
};

bool known_code(const nlohmann::json& code)
{
    for (const auto c : {vusw::ErrorCode::bad_request, vusw::ErrorCode::unknown_command, vusw::ErrorCode::bad_argument,
                         vusw::ErrorCode::no_such_port, vusw::ErrorCode::failed, vusw::ErrorCode::port_exists,
                         vusw::ErrorCode::busy})
        if (code == vusw::error_code_name(c))
            return true;
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static Stub* stub = [] {
        vusw::set_log_level(vusw::LogLevel::error);
        return new Stub;
    }();
    vusw::set_log_level(vusw::LogLevel::error);  // set_log_level requests would flood stderr
    const std::string reply = stub->management.answer(std::string_view(reinterpret_cast<const char*>(data), size));
    expect(!reply.empty() && reply.back() == '\n' && reply.find('\n') == reply.size() - 1, "reply is not one line");
    const auto j = nlohmann::json::parse(reply, nullptr, false);  // also checks UTF-8
    expect(!j.is_discarded() && j.is_object(), "reply is not a JSON object");
    expect(j.contains("version") && j["version"] == vusw::kProtocolVersion, "reply without the protocol version");
    if (j.contains("error")) {
        expect(j["error"].is_object() && known_code(j["error"].value("code", nlohmann::json())), "unknown error code");
        expect(j["error"].contains("message") && j["error"]["message"].is_string(), "error without a message");
    }
    return 0;
}
