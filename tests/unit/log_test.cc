// The log facility: journald priority prefixes and the per-key rate limiter.
#include <doctest/doctest.h>

#include "vusw/log.h"

namespace vusw {
namespace {
using namespace std::chrono_literals;
const RateLimiter::Clock::time_point t0{};
}  // namespace

TEST_CASE("Log lines: syslog priority and no prefix of ours for journald, level names otherwise")
{
    CHECK(log_format(LogLevel::error, "x", true) == "<3>x");
    CHECK(log_format(LogLevel::warn, "x", true) == "<4>x");
    CHECK(log_format(LogLevel::info, "x", true) == "<6>x");
    CHECK(log_format(LogLevel::debug, "x", true) == "<7>x");
    CHECK(log_format(LogLevel::warn, "port vm1: y", false) == "vuswitchd: warn: port vm1: y");
}

TEST_CASE("Log level names parse back, others are refused")
{
    LogLevel l = LogLevel::info;
    for (LogLevel want : {LogLevel::error, LogLevel::warn, LogLevel::info, LogLevel::debug}) {
        CHECK(parse_log_level(log_level_name(want), l));
        CHECK(l == want);
    }
    l = LogLevel::info;
    CHECK_FALSE(parse_log_level("verbose", l));
    CHECK_FALSE(parse_log_level("", l));
    CHECK(l == LogLevel::info);
}

TEST_CASE("RateLimiter: the first event of a key per window passes, the rest are counted once")
{
    RateLimiter r(10s);
    // A front-end adding 509 regions that cannot be DMA-registered: one line, 508 counted.
    unsigned passed = 0;
    for (int i = 0; i < 509; ++i)
        passed += r.admit("port vm1: dma", t0 + std::chrono::milliseconds(i)) ? 1 : 0;
    CHECK(passed == 1);
    CHECK(r.expire(t0 + 9s).empty());  // the window has not ended
    const auto done = r.expire(t0 + 10s);
    REQUIRE(done.size() == 1);
    CHECK(done[0].first == "port vm1: dma");
    CHECK(done[0].second == 508);
    CHECK(r.expire(t0 + 30s).empty());  // reported once
    CHECK(r.admit("port vm1: dma", t0 + 31s));  // a new window logs its first again
}

TEST_CASE("RateLimiter: keys are limited separately")
{
    RateLimiter r(10s);
    CHECK(r.admit("port vm1: bad", t0));
    CHECK(r.admit("port vm2: bad", t0));
    CHECK_FALSE(r.admit("port vm1: bad", t0 + 1s));
    CHECK(r.admit("port vm1: other", t0 + 1s));
    const auto done = r.expire(t0 + 11s);
    REQUIRE(done.size() == 1);
    CHECK(done[0] == std::pair<std::string, uint64_t>{"port vm1: bad", 1});
    CHECK(r.keys() == 0);  // expired keys are forgotten: a peer cannot grow the map forever
}

TEST_CASE("RateLimiter: a quiet key starts a new window without waiting for expire()")
{
    RateLimiter r(10s, 2);
    CHECK(r.admit("k", t0));
    CHECK(r.admit("k", t0 + 1s));  // burst 2
    CHECK_FALSE(r.admit("k", t0 + 2s));
    RateLimiter q(10s);
    CHECK(q.admit("k", t0));
    CHECK(q.admit("k", t0 + 20s));  // nothing suppressed in between: no summary owed
}

}  // namespace vusw
