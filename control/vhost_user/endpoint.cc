// vhost-user sockets.
#include "control/vhost_user/endpoint.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/fd_reserve.h"
#include "vusw/log.h"

namespace vusw::vhost_user {
namespace {

constexpr std::chrono::milliseconds kMinBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{2000};

Result<sockaddr_un> unix_address(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        return fail("config", fmt::format("socket path {} is longer than {} bytes", path, sizeof(addr.sun_path) - 1));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

constexpr std::chrono::milliseconds kFdRetry{1000};  // listening paused when even the reserve is gone

}  // namespace

Endpoint::Endpoint(VhostPort& port, SessionEnv env, EventLoop& loop, SocketAccess access)
    : port_(port), env_(env), loop_(loop), access_(std::move(access))
{
}

Endpoint::~Endpoint()
{
    close_session();
    if (listen_) {
        loop_.unwatch(listen_.get());
        ::unlink(port_.path().c_str());
    }
}

Status Endpoint::start()
{
    if (port_.client_mode()) {
        port_.set_state("connecting");
        try_connect();
        return {};
    }
    auto addr = unix_address(port_.path());
    if (!addr)
        return std::unexpected(addr.error());
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (connect(probe.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) == 0)
        return fail("socket_in_use", fmt::format("{} is in use by another process (another vuswitchd?); stop it or pick another path", port_.path()));
    struct stat st {};
    if (lstat(port_.path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
        ::unlink(port_.path().c_str());  // left over from a run that did not clean up
    listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (bind_with_access(listen_.get(), *addr, port_.path(), access_) != 0 || listen(listen_.get(), 4) != 0)
        return fail("socket", fmt::format("cannot listen on {}: {} (does the directory exist and is it writable?)",
                                          port_.path(), strerror(errno)));
    port_.set_state("waiting");
    take_fd_reserve();  // now, while fds are plenty
    return listen_again();
}

Status Endpoint::listen_again()
{
    listen_paused_ = false;
    return loop_.watch(listen_.get(), [this] { accept_one(); });
}

void Endpoint::accept_one()
{
    UniqueFd sock(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!sock && out_of_fds(errno))
        refuse_for_fds(errno);
    if (!sock)
        return;
    if (session_) {
        log_limited(LogLevel::warn, fmt::format("port {}: second_connection", port_.name()),
                    "port {}: refusing a second front-end while one is connected", port_.name());
        port_.protocol().count_error("second_connection", "a second front-end connected while one is");
        return;
    }
    log(LogLevel::info, "port {}: front-end connected on {}", port_.name(), port_.path());
    attach(std::move(sock));
}

void Endpoint::refuse_for_fds(int err)
{
    port_.protocol().count_error("fd_limit", "a front-end was refused: the daemon is out of file descriptors");
    log_limited(LogLevel::warn, fmt::format("port {}: fd_limit", port_.name()),
                "port {}: refusing a front-end: the daemon is out of file descriptors ({}); raise its limit "
                "(LimitNOFILE= in its unit, ulimit -n) or detach guests",
                port_.name(), strerror(err));
    if (shed_connection(listen_.get()))
        return;
    // Not even the reserve could take it: stop listening for a while instead of spinning.
    loop_.unwatch(listen_.get());
    listen_paused_ = true;
    next_attempt_ = std::chrono::steady_clock::now() + kFdRetry;
}

void Endpoint::try_connect()
{
    auto addr = unix_address(port_.path());
    if (!addr)
        return;
    UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
        log(LogLevel::debug, "port {}: connect {}: {}; retrying in {} ms", port_.name(), port_.path(), strerror(errno), backoff_.count());
        next_attempt_ = std::chrono::steady_clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, kMaxBackoff);
        return;
    }
    log(LogLevel::info, "port {}: connected to front-end at {}", port_.name(), port_.path());
    backoff_ = kMinBackoff;
    attach(std::move(sock));
}

void Endpoint::attach(UniqueFd sock)
{
    const int fd = sock.get();
    session_ = std::make_unique<Session>(port_, std::move(sock), env_);
    if (auto ok = loop_.watch(fd, [this] { on_session_readable(); }); !ok) {
        log(LogLevel::error, "port {}: {}", port_.name(), ok.error().detail);
        session_.reset();
    }
}

void Endpoint::on_session_readable()
{
    if (!session_->on_readable())
        close_session();
}

void Endpoint::close_session()
{
    if (!session_)
        return;
    loop_.unwatch(session_->fd());
    session_.reset();
    if (port_.client_mode())
        next_attempt_ = std::chrono::steady_clock::now() + kMinBackoff;  // the front-end may come back
}

void Endpoint::tick()
{
    if (listen_paused_ && std::chrono::steady_clock::now() >= next_attempt_)
        (void)listen_again();
    if (port_.client_mode() && !session_ && std::chrono::steady_clock::now() >= next_attempt_)
        try_connect();
}

}  // namespace vusw::vhost_user
