// vuswitchd configuration: command line and config file (same option names).
#pragma once

#include <string>
#include <vector>

#include "vusw/log.h"
#include "vusw/result.h"

namespace vusw {

struct Config {
    std::vector<std::string> vhost_server;  // --vhost-user PATH
    std::vector<std::string> vhost_client;  // --vhost-user-client PATH
    std::vector<std::string> nics;          // --nic DEVARGS
    std::vector<unsigned> lcores;           // control core first, then PMD cores
    std::string metrics = "127.0.0.1:9750"; // "off" disables
    std::string control;                    // default: RUN_DIR/vuswitchd.ctl
    std::string run_dir = "/run/vuswitch";
    std::string file_prefix = "vuswitch";
    unsigned memory_mb = 256;
    bool no_huge = false;
    LogLevel log_level = LogLevel::info;
    bool used_default_ports = false;
};

// What parse_args() decided: run with a config, or print text and exit.
struct ParsedArgs {
    Config config;
    std::string print;  // --help / --version text; empty to run
};

// Parses argv (and --config FILE); errors say which option and what to do.
Result<ParsedArgs> parse_args(int argc, const char* const* argv);
// "0,1", "0-2", "0,2-3" -> lcore ids.
Result<std::vector<unsigned>> parse_lcores(const std::string& list);
// The port name for a socket path: its file name without extension.
std::string port_name_from_path(const std::string& path);

}  // namespace vusw
