// One vhost-user connection: framing over a unix stream socket with SCM_RIGHTS fds.
//
// Only syntax is checked here (version, payload size, fd count); what a request means is
// the dispatcher's business.
#pragma once

#include <span>

#include "control/vhost_user/message.h"
#include "vusw/result.h"

namespace vusw::vhost_user {

// Validates a header read off the wire.
Result<Header> parse_header(std::span<const std::byte> bytes);

class Connection {
public:
    explicit Connection(UniqueFd sock) : sock_(std::move(sock)) {}
    int fd() const { return sock_.get(); }

    // Reads one whole message into `msg`. Errors: "peer_closed" (clean close between
    // messages), "truncated", "oversized", "bad_version", "too_many_fds", "io".
    // Every error is fatal for the connection.
    Status receive(Message& msg);
    // Sends a reply to `request` carrying `payload` (and the fd `fd`, if not -1).
    Status reply(Request request, std::span<const std::byte> payload, int fd = -1);
    Status reply_u64(Request request, uint64_t value);

private:
    Status read_exact(std::byte* data, std::size_t len);

    UniqueFd sock_;
};

}  // namespace vusw::vhost_user
