// Log sink: stderr, one line per event, with the level (or a syslog priority for journald).
#include "vusw/log.h"

#include <atomic>
#include <cstdlib>

namespace vusw {
namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
std::atomic<bool> g_journal{std::getenv("JOURNAL_STREAM") != nullptr};
constexpr std::string_view kNames[] = {"error", "warn", "info", "debug"};
constexpr int kSyslogPriority[] = {3, 4, 6, 7};  // LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG
}  // namespace

LogLevel log_level()
{
    return g_level.load(std::memory_order_relaxed);
}

void set_log_level(LogLevel level)
{
    g_level.store(level, std::memory_order_relaxed);
}

std::string_view log_level_name(LogLevel level)
{
    return kNames[int(level)];
}

bool parse_log_level(std::string_view name, LogLevel& level)
{
    for (int i = 0; i < int(std::size(kNames)); ++i)
        if (name == kNames[i]) {
            level = LogLevel(i);
            return true;
        }
    return false;
}

void set_log_journal(bool journal)
{
    g_journal.store(journal, std::memory_order_relaxed);
}

bool log_journal()
{
    return g_journal.load(std::memory_order_relaxed);
}

std::string log_format(LogLevel level, std::string_view text, bool journal)
{
    if (journal)  // journald takes the priority from the prefix and stamps the time itself
        return fmt::format("<{}>{}", kSyslogPriority[int(level)], text);
    return fmt::format("vuswitchd: {}: {}", kNames[int(level)], text);
}

void log_line(LogLevel level, std::string_view text)
{
    const std::string line = log_format(level, text, log_journal()) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

bool RateLimiter::admit(const std::string& key, Clock::time_point now)
{
    auto [it, fresh] = keys_.try_emplace(key, Window{now});
    Window& w = it->second;
    if (!fresh && now - w.start >= window_ && w.suppressed == 0)
        w = Window{now};  // a quiet key starts a new window (one with suppressed events waits for expire())
    if (w.passed < burst_) {
        ++w.passed;
        return true;
    }
    ++w.suppressed;
    return false;
}

std::vector<std::pair<std::string, uint64_t>> RateLimiter::expire(Clock::time_point now)
{
    std::vector<std::pair<std::string, uint64_t>> done;
    for (auto it = keys_.begin(); it != keys_.end();) {
        if (now - it->second.start < window_) {
            ++it;
            continue;
        }
        if (it->second.suppressed > 0)
            done.emplace_back(it->first, it->second.suppressed);
        it = keys_.erase(it);
    }
    return done;
}

RateLimiter& log_limiter()
{
    static RateLimiter limiter;
    return limiter;
}

void log_suppressed()
{
    for (const auto& [key, n] : log_limiter().expire(RateLimiter::Clock::now()))
        log_line(LogLevel::warn, fmt::format("{}: ... and {} more suppressed", key, n));
}

void log_limited_line(LogLevel level, const std::string& key, std::string_view text)
{
    log_suppressed();  // an ended window's sum comes before the next window's first line
    if (log_limiter().admit(key, RateLimiter::Clock::now()))
        log_line(level, text);
}

}  // namespace vusw
