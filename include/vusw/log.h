// Logging for the control thread (PMD cores never log: they count).
#pragma once

#include <cstdio>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vusw {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, std::string_view text);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args)
{
    if (level <= log_level())
        log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace vusw
