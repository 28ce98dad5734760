// epoll loop.
#include "control/event_loop.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace vusw {

EventLoop::EventLoop() : epoll_(epoll_create1(EPOLL_CLOEXEC)) {}

Status EventLoop::watch(int fd, std::function<void()> on_readable)
{
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        return fail("epoll", fmt::format("epoll_ctl add {}: {}", fd, strerror(errno)));
    handlers_[fd] = std::move(on_readable);
    return {};
}

Status EventLoop::want(int fd, bool readable, bool writable)
{
    epoll_event ev{};
    ev.events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
        return fail("epoll", fmt::format("epoll_ctl mod {}: {}", fd, strerror(errno)));
    return {};
}

void EventLoop::unwatch(int fd)
{
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    handlers_.erase(fd);
}

void EventLoop::run(const std::function<std::chrono::milliseconds()>& period, const std::function<void()>& tick)
{
    auto last_tick = std::chrono::steady_clock::now();
    while (running_) {
        // Asked every time round: a handler may just have made the next tick urgent.
        const auto next_tick = last_tick + period();
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - std::chrono::steady_clock::now());
        epoll_event events[16];
        const int n = epoll_wait(epoll_.get(), events, 16, int(std::max<long>(0, wait.count())));
        for (int i = 0; i < n; ++i) {
            // A handler may unwatch other fds (or itself): look each one up afresh.
            auto it = handlers_.find(events[i].data.fd);
            if (it != handlers_.end()) {
                auto handler = it->second;
                handler();
            }
        }
        if (std::chrono::steady_clock::now() >= last_tick + period()) {
            tick();
            last_tick = std::chrono::steady_clock::now();
        }
    }
}

}  // namespace vusw
