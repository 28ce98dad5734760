// The dispatch table and its checks.
#include "control/vhost_user/dispatch.h"

#include <array>

#include <fmt/format.h>

#include "control/vhost_user/session.h"

namespace vusw::vhost_user {
namespace {

constexpr uint32_t u64 = sizeof(uint64_t);
using S = Session;

// Indexed by request code. Unsupported requests keep their name and sizes (so errors
// name them) but have no handler.
constexpr std::array<Row, kRequestCount> kTable = {{
    {"NONE", nullptr, 0, 0, 0, 0, 0, Reply::ack},
    {"GET_FEATURES", &S::get_features, 0, 0, 0, 0, 0, Reply::always},
    {"SET_FEATURES", &S::set_features, u64, u64, 0, 0, 0, Reply::ack},
    {"SET_OWNER", &S::set_owner, 0, 0, 0, 0, 0, Reply::ack},
    {"RESET_OWNER", &S::reset_owner, 0, 0, 0, 0, 0, Reply::ack},
    {"SET_MEM_TABLE", &S::set_mem_table, 8, sizeof(MemoryTable), 0, kMaxMemTableRegions, 0, Reply::ack},
    {"SET_LOG_BASE", &S::set_log_base, sizeof(LogBase), sizeof(LogBase), 1, 1, protocol::kLogShmfd, Reply::always},
    {"SET_LOG_FD", &S::set_log_fd, 0, u64, 1, 1, 0, Reply::ack},
    {"SET_VRING_NUM", &S::set_vring_num, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::ack},
    {"SET_VRING_ADDR", &S::set_vring_addr, sizeof(VringAddr), sizeof(VringAddr), 0, 0, 0, Reply::ack},
    {"SET_VRING_BASE", &S::set_vring_base, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::ack},
    {"GET_VRING_BASE", &S::get_vring_base, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::always},
    {"SET_VRING_KICK", &S::set_vring_kick, u64, u64, 0, 1, 0, Reply::ack},
    {"SET_VRING_CALL", &S::set_vring_call, u64, u64, 0, 1, 0, Reply::ack},
    {"SET_VRING_ERR", &S::set_vring_err, u64, u64, 0, 1, 0, Reply::ack},
    {"GET_PROTOCOL_FEATURES", &S::get_protocol_features, 0, 0, 0, 0, 0, Reply::always},
    {"SET_PROTOCOL_FEATURES", &S::set_protocol_features, u64, u64, 0, 0, 0, Reply::ack},
    {"GET_QUEUE_NUM", &S::get_queue_num, 0, 0, 0, 0, protocol::kMq, Reply::always},
    {"SET_VRING_ENABLE", &S::set_vring_enable, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::ack},
    {"SEND_RARP", &S::send_rarp, u64, u64, 0, 0, protocol::kRarp, Reply::ack},
    {"NET_SET_MTU", &S::net_set_mtu, u64, u64, 0, 0, protocol::kNetMtu, Reply::ack},
    {"SET_BACKEND_REQ_FD", nullptr, 0, 0, 1, 1, 0, Reply::ack},
    {"IOTLB_MSG", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::always},
    {"SET_VRING_ENDIAN", nullptr, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::ack},
    {"GET_CONFIG", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::always},
    {"SET_CONFIG", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::ack},
    {"CREATE_CRYPTO_SESSION", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::always},
    {"CLOSE_CRYPTO_SESSION", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::ack},
    // QEMU waits for the LISTEN and END replies whether REPLY_ACK was negotiated or not.
    {"POSTCOPY_ADVISE", &S::postcopy_advise, 0, 0, 0, 0, protocol::kPagefault, Reply::always},
    {"POSTCOPY_LISTEN", &S::postcopy_listen, 0, 0, 0, 0, protocol::kPagefault, Reply::always},
    {"POSTCOPY_END", &S::postcopy_end, 0, 0, 0, 0, protocol::kPagefault, Reply::always},
    {"GET_INFLIGHT_FD", nullptr, 0, kMaxPayload, 0, 0, 0, Reply::always},
    {"SET_INFLIGHT_FD", nullptr, 0, kMaxPayload, 1, 1, 0, Reply::ack},
    {"GPU_SET_SOCKET", nullptr, 0, 0, 1, 1, 0, Reply::ack},
    {"RESET_DEVICE", nullptr, 0, 0, 0, 0, 0, Reply::ack},
    {"VRING_KICK", nullptr, sizeof(VringState), sizeof(VringState), 0, 0, 0, Reply::ack},
    {"GET_MAX_MEM_SLOTS", &S::get_max_mem_slots, 0, 0, 0, 0, protocol::kConfigureMemSlots, Reply::always},
    {"ADD_MEM_REG", &S::add_mem_reg, sizeof(SingleRegion), sizeof(SingleRegion), 1, 1, protocol::kConfigureMemSlots, Reply::ack},
    // Spec: REM_MEM_REG should carry no fd, but QEMU 5.1-7.0 sent one; accept and close it.
    {"REM_MEM_REG", &S::rem_mem_reg, sizeof(SingleRegion), sizeof(SingleRegion), 0, 1, protocol::kConfigureMemSlots, Reply::ack},
    {"SET_STATUS", &S::set_status, u64, u64, 0, 0, protocol::kStatus, Reply::ack},
    {"GET_STATUS", &S::get_status, 0, 0, 0, 0, protocol::kStatus, Reply::always},
}};

constexpr bool names_in_order()
{
    return kTable[uint32_t(Request::SetMemTable)].name == "SET_MEM_TABLE" &&
           kTable[uint32_t(Request::GetMaxMemSlots)].name == "GET_MAX_MEM_SLOTS" &&
           kTable[uint32_t(Request::AddMemReg)].name == "ADD_MEM_REG" &&
           kTable[uint32_t(Request::RemMemReg)].name == "REM_MEM_REG" &&
           kTable[uint32_t(Request::GetStatus)].name == "GET_STATUS";
}
static_assert(kTable.size() == kRequestCount, "every request code needs a row");
static_assert(names_in_order(), "rows must sit at their request code");

}  // namespace

const Row* find_row(uint32_t request)
{
    return request < kTable.size() && request != 0 ? &kTable[request] : nullptr;
}

std::string_view request_name(uint32_t request)
{
    return request < kTable.size() ? kTable[request].name : "UNKNOWN";
}

Status check(const Row& row, const Message& msg, uint64_t negotiated)
{
    if (row.handler == nullptr)
        return fail("unsupported_request", fmt::format("{} is not supported by this back-end", row.name));
    if (row.protocol_feature != 0 && !(negotiated & row.protocol_feature))
        return fail("feature_not_negotiated", fmt::format("{} needs a protocol feature that was not negotiated", row.name));
    if (msg.header.size < row.min_size || msg.header.size > row.max_size)
        return fail("bad_payload_size", fmt::format("{} with a {}-byte payload (expected {}..{})", row.name,
                                                    msg.header.size, row.min_size, row.max_size));
    if (msg.fds.size() < row.min_fds || msg.fds.size() > row.max_fds)
        return fail("bad_fd_count", fmt::format("{} with {} fds (expected {}..{})", row.name, msg.fds.size(),
                                                row.min_fds, row.max_fds));
    return {};
}

}  // namespace vusw::vhost_user

std::string_view vusw::vhost_request_name(uint32_t request)
{
    return vhost_user::request_name(request);
}
