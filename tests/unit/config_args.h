// Test helper: vuswitchd's parse_args() on a list of arguments, its errors, and config
// files that remove themselves.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "control/config.h"

namespace vusw::test {

inline Result<ParsedArgs> parse(std::initializer_list<const char*> args)
{
    std::vector<const char*> argv{"vuswitchd"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_args(int(argv.size()), argv.data());
}

// The error of a parse that must fail; its reason must be "config".
inline std::string error_of(std::initializer_list<const char*> args)
{
    auto r = parse(args);
    REQUIRE_FALSE(r.has_value());
    CHECK(std::string(r.error().reason) == "config");
    CHECK_FALSE(r.error().detail.empty());
    return r.error().detail;
}

// A config file that removes itself.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text)
    {
        char name[] = "/tmp/vusw-config-XXXXXX";
        const int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TempFile() { unlink(path.c_str()); }
};

}  // namespace vusw::test
