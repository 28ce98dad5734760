// The one vhost-user dispatch table.
//
// Each row says what a request expects: payload size range, fd count range, the protocol
// feature that must have been negotiated, and whether the request always replies or only
// acks (REPLY_ACK). check() enforces all of it before any handler runs, so handlers only
// deal with meaning.
#pragma once

#include <cstdint>
#include <string_view>

#include "control/vhost_user/message.h"
#include "vusw/result.h"

namespace vusw::vhost_user {

class Session;

enum class Reply : uint8_t {
    ack,     // nothing, or a u64 status if NEED_REPLY and REPLY_ACK
    always,  // the handler sends the reply
};

struct Row {
    std::string_view name;  // the spec's name, e.g. "ADD_MEM_REG" (also a metric label)
    Status (Session::*handler)(Message&);  // nullptr: not supported by this back-end
    uint32_t min_size;
    uint32_t max_size;
    uint8_t min_fds;
    uint8_t max_fds;
    uint64_t protocol_feature;  // must be negotiated first; 0 = none
    Reply reply;
};

// The row for a request code; nullptr if the code is beyond the spec's list.
const Row* find_row(uint32_t request);
// The spec name of a request code ("UNKNOWN" beyond the list).
std::string_view request_name(uint32_t request);
// Checks a message against its row. The error reason is a metric label.
Status check(const Row& row, const Message& msg, uint64_t negotiated_protocol_features);

}  // namespace vusw::vhost_user
