// Logging for the control thread (PMD cores never log: they count).
//
// One line per event on stderr. Under systemd (JOURNAL_STREAM set: stderr is the
// journal) each line starts with its syslog priority, `<3>` .. `<7>` (sd-daemon(3)), and
// carries no timestamp of ours: journald adds its own. Elsewhere: `vuswitchd: LEVEL: text`.
//
// Whatever a peer can trigger repeatedly (a front-end's protocol errors, guest memory
// regions that cannot be registered for DMA) is logged through log_limited(): the first
// event of a kind (its key, e.g. "port vm1: bad_mem_region") in a window is logged, the
// rest are counted and summed up as "... and N more suppressed" when the window ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vusw {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
std::string_view log_level_name(LogLevel level);
// "error", "warn", "info" or "debug"; false for anything else.
bool parse_log_level(std::string_view name, LogLevel& level);
void log_line(LogLevel level, std::string_view text);
// Whether lines carry syslog priority prefixes (set from JOURNAL_STREAM at start-up).
void set_log_journal(bool journal);
bool log_journal();
// The line log_line() writes for `text` (without the newline).
std::string log_format(LogLevel level, std::string_view text, bool journal);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args)
{
    if (level <= log_level())
        log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

// Per-key rate limit: per window, the first `burst` events of a key pass; the others
// are counted. The caller reports the counts expire() returns.
class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;
    explicit RateLimiter(Clock::duration window = std::chrono::seconds(10), unsigned burst = 1)
        : window_(window), burst_(burst) {}

    // Whether the event of `key` at `now` may be logged.
    bool admit(const std::string& key, Clock::time_point now);
    // Keys whose window ended by `now` with suppressed events, and how many; forgets them.
    std::vector<std::pair<std::string, uint64_t>> expire(Clock::time_point now);
    std::size_t keys() const { return keys_.size(); }

private:
    struct Window {
        Clock::time_point start;
        unsigned passed = 0;
        uint64_t suppressed = 0;
    };
    Clock::duration window_;
    unsigned burst_;
    std::map<std::string, Window> keys_;
};

// The limiter of log_limited() (one per process; control thread only).
RateLimiter& log_limiter();
// Logs "KEY: ... and N more suppressed" for every key whose window ended (the daemon
// calls it every second; log_limited() too, for its own key).
void log_suppressed();
void log_limited_line(LogLevel level, const std::string& key, std::string_view text);

template <class... Args>
void log_limited(LogLevel level, const std::string& key, fmt::format_string<Args...> format, Args&&... args)
{
    if (level <= log_level())
        log_limited_line(level, key, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace vusw
