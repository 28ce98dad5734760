// The control socket's accepted connections, served by the control thread's event loop
// without ever blocking it.
//
// Each connection has its own buffer: its bytes are read as they come, the request is
// answered once a whole line arrived, and the reply is written as the client takes it.
// A client that dribbles, says nothing, sends an endless line or never reads its reply
// costs a slot and a buffer until its deadline, never the control thread's time: the
// vhost-user sessions, metrics and timers on the same loop go on. Connections beyond
// the cap are refused with an error line. Every drop is counted by reason and logged
// once per reason and window (log_limited).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "control/event_loop.h"
#include "vusw/result.h"
#include "vusw/unique_fd.h"

namespace vusw {

class ControlConnections {
public:
    using Clock = std::chrono::steady_clock;

    // Why a connection was closed without its answer.
    // fd_limit: refused because the daemon is out of file descriptors (fd_reserve.h).
    enum class Drop { timeout, too_long, busy, fd_limit, count_ };
    static std::string_view drop_name(Drop why);  // "timeout", "too_long", "busy", "fd_limit"

    struct Limits {
        Clock::duration deadline = std::chrono::seconds(5);  // for the request line, then again for the reply
        std::size_t max_line = 64 * 1024;                    // request bytes without a newline
        std::size_t max_connections = 64;                    // open at once
    };
    // The protocol's side: the reply line (with its newline) to a request line, and the
    // error line sent (best effort) to a connection dropped for `why`.
    struct Protocol {
        std::function<std::string(std::string_view line)> answer;
        std::function<std::string(Drop why, const Limits& limits)> refuse;
    };

    // Serves the connections of `listen_fd` (a listening, non-blocking socket the caller owns).
    ControlConnections(EventLoop& loop, int listen_fd, Protocol protocol, Limits limits);
    ~ControlConnections();
    ControlConnections(const ControlConnections&) = delete;
    ControlConnections& operator=(const ControlConnections&) = delete;
    Status start();

    std::size_t open() const { return connections_.size(); }
    uint64_t dropped(Drop why) const { return dropped_[std::size_t(why)]; }

private:
    struct Connection {
        UniqueFd fd;
        std::string in;          // request bytes so far
        std::string out;         // the reply; empty while reading
        std::size_t sent = 0;    // reply bytes written
        Clock::time_point deadline;
    };

    void accept_all();
    void refuse_for_fds(int err);
    void resume_listening();
    void admit(UniqueFd fd);
    void on_ready(int fd);
    bool read_request(Connection& c);  // false: closed
    bool write_reply(Connection& c);   // false: done or gone
    void expire();
    void drop(int fd, Drop why);
    void close(int fd);
    void arm_timer(bool on);

    EventLoop& loop_;
    int listen_;
    Protocol protocol_;
    Limits limits_;
    UniqueFd timer_;  // ticks while any connection is open or listening is paused
    bool listen_paused_ = false;  // out of fds even for refusing: resumed by the timer
    Clock::time_point resume_at_{};
    std::map<int, Connection> connections_;
    std::array<uint64_t, std::size_t(Drop::count_)> dropped_{};
};

}  // namespace vusw
