// The socket side of a vhost-user port: listen (server) or connect with backoff
// (client), and at most one Session at a time.
#pragma once

#include <chrono>
#include <memory>

#include "control/event_loop.h"
#include "control/privileges.h"
#include "control/vhost_user/session.h"

namespace vusw::vhost_user {

class Endpoint {
public:
    // `access`: mode and group of a server's socket.
    Endpoint(VhostPort& port, SessionEnv env, EventLoop& loop, SocketAccess access = {});
    ~Endpoint();

    // Server: binds and listens (a stale socket file is replaced; a live one is an error).
    // Client: starts connecting.
    Status start();
    // Control tick: client reconnects when due.
    void tick();
    VhostPort& port() { return port_; }

private:
    Status listen_again();
    void accept_one();
    // accept() failed for want of fds: refuse the queued front-end without spinning.
    void refuse_for_fds(int err);
    void try_connect();
    void attach(UniqueFd sock);
    void on_session_readable();
    void close_session();

    VhostPort& port_;
    SessionEnv env_;
    EventLoop& loop_;
    SocketAccess access_;
    UniqueFd listen_;
    std::unique_ptr<Session> session_;
    bool listen_paused_ = false;  // out of fds even for refusing: retried from tick()
    std::chrono::milliseconds backoff_{100};
    std::chrono::steady_clock::time_point next_attempt_{};
};

}  // namespace vusw::vhost_user
