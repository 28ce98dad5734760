// One vhost-user connection: framing over a unix stream socket with SCM_RIGHTS fds.
//
// Only syntax is checked here (version, payload size, fd count); what a request means is
// the dispatcher's business.
#pragma once

#include <array>
#include <span>
#include <vector>

#include "control/vhost_user/message.h"
#include "vusw/result.h"

namespace vusw::vhost_user {

// Validates a header read off the wire.
Result<Header> parse_header(std::span<const std::byte> bytes);

class Connection {
public:
    explicit Connection(UniqueFd sock) : sock_(std::move(sock)) {}
    int fd() const { return sock_.get(); }

    // Reads what the socket has of the next message without blocking. true: `msg` holds a
    // whole message (with every fd that came with any of its bytes); false: only part of
    // one arrived so far, kept here until the rest does (call again when readable).
    // Errors: "peer_closed" (clean close between messages), "truncated" (closed part-way),
    // "oversized", "bad_version", "too_many_fds", "io". Every error is fatal for the connection.
    Result<bool> receive(Message& msg);
    // Sends a reply to `request` carrying `payload` (and the fd `fd`, if not -1).
    Status reply(Request request, std::span<const std::byte> payload, int fd = -1);
    Status reply_u64(Request request, uint64_t value);

private:
    Result<std::size_t> recv_some(std::size_t len);
    bool take_message(Message& msg);

    UniqueFd sock_;
    // The message being assembled: its bytes so far, its header once complete, its fds.
    std::array<std::byte, sizeof(Header) + kMaxPayload> buf_{};
    std::size_t have_ = 0;
    Header pending_{};
    std::vector<UniqueFd> fds_;
};

}  // namespace vusw::vhost_user
