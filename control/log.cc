// Log sink: stderr, one line per event, with the level.
#include "vusw/log.h"

#include <atomic>

namespace vusw {
namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
constexpr std::string_view kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

LogLevel log_level()
{
    return g_level.load(std::memory_order_relaxed);
}

void set_log_level(LogLevel level)
{
    g_level.store(level, std::memory_order_relaxed);
}

void log_line(LogLevel level, std::string_view text)
{
    fmt::print(stderr, "vuswitchd: {}: {}\n", kNames[int(level)], text);
    std::fflush(stderr);
}

}  // namespace vusw
