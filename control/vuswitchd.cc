// vuswitchd: the switch daemon.
#include <cstdio>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/daemon.h"
#include "vusw/log.h"

int main(int argc, char** argv)
{
    auto parsed = vusw::parse_args(argc, argv);
    if (!parsed) {
        fmt::print(stderr, "{}vuswitchd: {}\n", vusw::log_journal() ? "<3>" : "", parsed.error().detail);
        return 2;
    }
    if (!parsed->print.empty()) {
        fmt::print("{}", parsed->print);
        return 0;
    }
    try {
        vusw::Daemon daemon(parsed->config, std::vector<std::string>(argv, argv + argc));
        return daemon.run();
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}vuswitchd: error: {}\n", vusw::log_journal() ? "<3>" : "", e.what());
        return 1;
    }
}
