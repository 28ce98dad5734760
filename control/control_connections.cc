// Control socket connections on the event loop.
#include "control/control_connections.h"

#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "control/fd_reserve.h"
#include "vusw/log.h"

namespace vusw {
namespace {

// How often deadlines are checked while connections are open: a late client is dropped
// at most this much after its deadline.
constexpr auto kTick = std::chrono::milliseconds(250);

double seconds(ControlConnections::Clock::duration d)
{
    return std::chrono::duration<double>(d).count();
}

}  // namespace

std::string_view ControlConnections::drop_name(Drop why)
{
    constexpr std::string_view kNames[] = {"timeout", "too_long", "busy", "fd_limit"};
    static_assert(std::size(kNames) == std::size_t(Drop::count_));
    return kNames[std::size_t(why)];
}

ControlConnections::ControlConnections(EventLoop& loop, int listen_fd, Protocol protocol, Limits limits)
    : loop_(loop), listen_(listen_fd), protocol_(std::move(protocol)), limits_(limits)
{
}

ControlConnections::~ControlConnections()
{
    while (!connections_.empty())
        close(connections_.begin()->first);
    if (timer_)
        loop_.unwatch(timer_.get());
    loop_.unwatch(listen_);
}

Status ControlConnections::start()
{
    timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_)
        return fail("socket", fmt::format("control socket: timerfd: {}", strerror(errno)));
    if (auto ok = loop_.watch(timer_.get(), [this] { expire(); }); !ok)
        return ok;
    take_fd_reserve();  // now, while fds are plenty
    return loop_.watch(listen_, [this] { accept_all(); });
}

void ControlConnections::accept_all()
{
    for (;;) {
        UniqueFd fd(accept4(listen_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd && out_of_fds(errno)) {
            refuse_for_fds(errno);
            return;
        }
        if (!fd) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_limited(LogLevel::warn, "control socket: accept", "control socket: accept: {}", strerror(errno));
            if (errno != EINTR && errno != ECONNABORTED)
                return;
            continue;
        }
        admit(std::move(fd));
    }
}

void ControlConnections::refuse_for_fds(int err)
{
    ++dropped_[std::size_t(Drop::fd_limit)];
    log_limited(LogLevel::warn, "control socket: fd_limit",
                "control socket: refusing a connection: the daemon is out of file descriptors ({}); raise its "
                "limit (LimitNOFILE= in its unit, ulimit -n) or detach guests",
                strerror(err));
    if (shed_connection(listen_))
        return;
    // Not even the reserve could take it: stop listening for a while instead of spinning.
    loop_.unwatch(listen_);
    listen_paused_ = true;
    resume_at_ = Clock::now() + std::chrono::seconds(1);
    arm_timer(true);
}

void ControlConnections::resume_listening()
{
    if (!listen_paused_ || Clock::now() < resume_at_)
        return;
    listen_paused_ = false;
    if (!loop_.watch(listen_, [this] { accept_all(); }))
        log(LogLevel::error, "control socket: cannot watch it again; vuswitchctl will not be answered");
    if (connections_.empty())
        arm_timer(false);
}

void ControlConnections::admit(UniqueFd fd)
{
    if (connections_.size() >= limits_.max_connections) {
        const std::string refusal = protocol_.refuse(Drop::busy, limits_);
        (void)send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ++dropped_[std::size_t(Drop::busy)];
        log_limited(LogLevel::warn, "control socket: busy",
                    "control socket: refused a connection: {} are open already (the others wait for their request "
                    "line or their deadline of {} s)",
                    limits_.max_connections, seconds(limits_.deadline));
        return;
    }
    const int key = fd.get();
    if (auto ok = loop_.watch(key, [this, key] { on_ready(key); }); !ok) {
        log_limited(LogLevel::warn, "control socket: watch", "control socket: {}", ok.error().detail);
        return;
    }
    if (connections_.empty())
        arm_timer(true);
    connections_[key] = Connection{std::move(fd), {}, {}, 0, Clock::now() + limits_.deadline};
}

void ControlConnections::on_ready(int fd)
{
    const auto it = connections_.find(fd);
    if (it == connections_.end())
        return;
    Connection& c = it->second;
    const bool more = c.out.empty() ? read_request(c) : write_reply(c);
    if (!more)
        close(fd);
}

// Reads what is there; answers once a whole line arrived.
bool ControlConnections::read_request(Connection& c)
{
    char buf[4096];
    const ssize_t n = recv(c.fd.get(), buf, sizeof(buf), 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0)
        return false;  // hung up before a whole line: nothing to answer
    const std::size_t searched = c.in.size();
    c.in.append(buf, std::size_t(n));
    const std::size_t newline = c.in.find('\n', searched);
    if (newline == std::string::npos) {
        if (c.in.size() > limits_.max_line)
            drop(c.fd.get(), Drop::too_long);  // keeps the entry: on_ready's close() removes it
        return c.in.size() <= limits_.max_line;
    }
    c.in.resize(newline);  // one request per connection: what follows the line is ignored
    c.out = protocol_.answer(c.in);
    c.deadline = Clock::now() + limits_.deadline;  // a fresh one for taking the reply
    if (!write_reply(c))
        return false;
    return bool(loop_.want(c.fd.get(), false, true));  // until the client takes the rest
}

bool ControlConnections::write_reply(Connection& c)
{
    const ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.sent += std::size_t(n);
    return c.sent < c.out.size();
}

void ControlConnections::expire()
{
    uint64_t ticks = 0;
    (void)read(timer_.get(), &ticks, sizeof(ticks));
    const auto now = Clock::now();
    std::vector<int> late;
    for (const auto& [fd, c] : connections_)
        if (c.deadline <= now)
            late.push_back(fd);
    for (const int fd : late) {
        drop(fd, Drop::timeout);
        close(fd);
    }
    resume_listening();
}

// Counts, logs and tells the client (while it still waits for a reply) why it is dropped.
void ControlConnections::drop(int fd, Drop why)
{
    Connection& c = connections_.at(fd);
    ++dropped_[std::size_t(why)];
    const bool reading = c.out.empty();
    if (reading) {
        const std::string refusal = protocol_.refuse(why, limits_);
        (void)send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    log_limited(LogLevel::warn, fmt::format("control socket: {}", drop_name(why)),
                "control socket: dropped a connection: {}",
                why == Drop::too_long ? fmt::format("{} bytes without a newline", c.in.size())
                : reading ? fmt::format("no complete request line within {} s ({} bytes came)", seconds(limits_.deadline),
                                        c.in.size())
                          : fmt::format("it did not take its reply within {} s ({} of {} bytes sent)",
                                        seconds(limits_.deadline), c.sent, c.out.size()));
}

void ControlConnections::close(int fd)
{
    loop_.unwatch(fd);
    connections_.erase(fd);  // closes it
    if (connections_.empty() && !listen_paused_)
        arm_timer(false);
}

void ControlConnections::arm_timer(bool on)
{
    itimerspec spec{};
    if (on) {
        spec.it_interval.tv_nsec = std::chrono::nanoseconds(kTick).count();
        spec.it_value = spec.it_interval;
    }
    (void)timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

}  // namespace vusw
