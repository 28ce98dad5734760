// libFuzzer target: vuswitchd's configuration parser (parse_args), command line and
// --config file together.
//
// Input: the config file's text, then `\0`, then command-line arguments separated by `\0`
// (no `\0`: all of it is the file). Whatever an operator writes must give a Config or a
// "config" error with a message, promptly (Boost 1.74 looped forever on some text: the
// fuzzer's -timeout catches that), and a Config must hold what the rest of the daemon
// relies on: named ports with distinct valid names, a control core and PMD cores.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "control/config.h"

using vusw::fuzz::expect;

namespace {

// The file the arguments' --config points at: a memfd rewritten for every input.
const std::string& config_file(std::string_view text)
{
    static const int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    static const std::string path = "/proc/self/fd/" + std::to_string(fd);
    expect(fd >= 0 && ftruncate(fd, 0) == 0, "memfd");
    expect(pwrite(fd, text.data(), text.size(), 0) == ssize_t(text.size()), "memfd write");
    return path;
}

// --config (or an abbreviation Boost accepts) from the fuzzer would read files of its
// choosing (/dev/stdin blocks): only ours is given.
bool names_config(const std::string& arg)
{
    if (arg.rfind("--", 0) != 0)
        return false;
    const std::string name = arg.substr(2, arg.find('=') - 2);
    return name.size() >= 3 && std::string_view("config").starts_with(name);
}

bool valid_name(const std::string& name)
{
    return !name.empty() && name.size() <= 64 &&
           name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:") == std::string::npos;
}

void check(const vusw::Config& c)
{
    std::set<std::string> names;
    for (const auto& [kind, spec] : vusw::port_specs(c)) {
        expect(!spec.target.empty(), "a port without PATH or DEVARGS");
        expect(valid_name(spec.name), "a port name vuswitchctl, --pin and the metrics cannot use");
        expect(names.insert(spec.name).second, "two ports with one name");
        expect(kind == vusw::PortKind::nic || spec.target.back() != '/', "a socket path that is a directory");
    }
    expect(c.lcores.size() >= 2 && c.lcores.size() <= 17, "lcores out of bounds");
    for (const auto& [port, pmd] : c.pins)
        expect(names.count(port) == 1 && pmd < c.lcores.size() - 1, "a pin to no port or no PMD");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto nul = input.find('\0');
    std::vector<std::string> args{"vuswitchd", "--config", config_file(input.substr(0, nul))};
    for (auto at = nul; at != std::string_view::npos && args.size() < 64;) {
        const auto next = input.find('\0', at + 1);
        std::string arg(input.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
        if (!names_config(arg))
            args.push_back(std::move(arg));
        at = next;
    }
    std::vector<const char*> argv;
    for (const std::string& a : args)
        argv.push_back(a.c_str());
    auto parsed = vusw::parse_args(int(argv.size()), argv.data());
    if (!parsed) {
        expect(std::string_view(parsed.error().reason) == "config", "an error that is not a config error");
        expect(!parsed.error().detail.empty(), "an error without a message");
        return 0;
    }
    if (parsed->print.empty())
        check(parsed->config);
    return 0;
}
