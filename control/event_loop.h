// The control thread's epoll loop: fd readiness callbacks and a periodic tick.
#pragma once

#include <chrono>
#include <functional>
#include <map>

#include "vusw/result.h"
#include "vusw/unique_fd.h"

namespace vusw {

class EventLoop {
public:
    EventLoop();
    Status watch(int fd, std::function<void()> on_readable);
    // Which readiness of a watched fd calls its callback: readable, writable or both (hang-ups
    // and errors always do). A connection that has its request and owes a reply waits for
    // writable only, so a client that keeps sending cannot make the loop spin.
    Status want(int fd, bool readable, bool writable);
    void unwatch(int fd);
    // Runs until stop(); calls `tick` about every `period()` (asked anew after each tick).
    void run(const std::function<std::chrono::milliseconds()>& period, const std::function<void()>& tick);
    void stop() { running_ = false; }

private:
    UniqueFd epoll_;
    std::map<int, std::function<void()>> handlers_;
    bool running_ = true;
};

}  // namespace vusw
