// vhost-user framing (parse_header) and the dispatch table's checks.
#include "control/vhost_user/dispatch.h"

#include <sys/eventfd.h>

#include <cstring>
#include <string>

#include <doctest/doctest.h>

#include "control/vhost_user/connection.h"

using namespace vusw;
using namespace vusw::vhost_user;

namespace {

std::vector<std::byte> header_bytes(uint32_t request, uint32_t flags, uint32_t size)
{
    const Header h{request, flags, size};
    std::vector<std::byte> out(sizeof h);
    std::memcpy(out.data(), &h, sizeof h);
    return out;
}

std::string reason_of(const Result<Header>& r)
{
    return r ? "ok" : r.error().reason;
}

std::string reason_of(const Status& s)
{
    return s ? "ok" : s.error().reason;
}

Message message(Request r, uint32_t size, std::size_t fds = 0)
{
    Message m;
    m.header = Header{uint32_t(r), kVersion, size};
    for (std::size_t i = 0; i < fds; ++i)
        m.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
    return m;
}

const Row& row(Request r)
{
    const Row* found = find_row(uint32_t(r));
    REQUIRE(found != nullptr);
    return *found;
}

constexpr uint64_t kAllProtocol = ~uint64_t(0);

}  // namespace

TEST_CASE("parse_header accepts a version-1 header and keeps its fields")
{
    auto h = parse_header(header_bytes(37, kVersion | kNeedReplyFlag, 40));
    REQUIRE(h.has_value());
    CHECK(h->request == 37);
    CHECK(h->flags == (kVersion | kNeedReplyFlag));
    CHECK(h->size == 40);
    CHECK(parse_header(header_bytes(1, kVersion, kMaxPayload)).has_value());
    // Trailing bytes are the payload's business.
    auto longer = header_bytes(1, kVersion, 0);
    longer.resize(64);
    CHECK(parse_header(longer).has_value());
}

TEST_CASE("parse_header rejects truncated, wrong-version and oversized headers")
{
    auto bytes = header_bytes(1, kVersion, 0);
    CHECK(reason_of(parse_header(std::span(bytes).first(11))) == "truncated");
    CHECK(reason_of(parse_header(std::span<const std::byte>())) == "truncated");
    CHECK(reason_of(parse_header(header_bytes(1, 0, 0))) == "bad_version");
    CHECK(reason_of(parse_header(header_bytes(1, 2, 0))) == "bad_version");
    CHECK(reason_of(parse_header(header_bytes(1, 3 | kNeedReplyFlag, 0))) == "bad_version");
    CHECK(reason_of(parse_header(header_bytes(1, kVersion, kMaxPayload + 1))) == "oversized");
    CHECK(reason_of(parse_header(header_bytes(1, kVersion, ~uint32_t(0)))) == "oversized");
}

TEST_CASE("every request code 1..40 has a row with the spec's name")
{
    // QEMU docs/interop/vhost-user.rst, "Front-end message types".
    const char* const kNames[] = {
        "GET_FEATURES", "SET_FEATURES", "SET_OWNER", "RESET_OWNER", "SET_MEM_TABLE", "SET_LOG_BASE",
        "SET_LOG_FD", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE", "GET_VRING_BASE", "SET_VRING_KICK",
        "SET_VRING_CALL", "SET_VRING_ERR", "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM",
        "SET_VRING_ENABLE", "SEND_RARP", "NET_SET_MTU", "SET_BACKEND_REQ_FD", "IOTLB_MSG", "SET_VRING_ENDIAN",
        "GET_CONFIG", "SET_CONFIG", "CREATE_CRYPTO_SESSION", "CLOSE_CRYPTO_SESSION", "POSTCOPY_ADVISE",
        "POSTCOPY_LISTEN", "POSTCOPY_END", "GET_INFLIGHT_FD", "SET_INFLIGHT_FD", "GPU_SET_SOCKET",
        "RESET_DEVICE", "VRING_KICK", "GET_MAX_MEM_SLOTS", "ADD_MEM_REG", "REM_MEM_REG", "SET_STATUS",
        "GET_STATUS",
    };
    static_assert(std::size(kNames) == 40);
    for (uint32_t code = 1; code <= 40; ++code) {
        CAPTURE(code);
        const Row* r = find_row(code);
        REQUIRE(r != nullptr);
        CHECK(r->name == kNames[code - 1]);
        CHECK(request_name(code) == kNames[code - 1]);
        CHECK(r->min_size <= r->max_size);
        CHECK(r->max_size <= kMaxPayload);
        CHECK(r->min_fds <= r->max_fds);
        CHECK(r->max_fds <= kMaxFds);
    }
}

TEST_CASE("codes outside the list have no row")
{
    CHECK(find_row(0) == nullptr);
    CHECK(find_row(kRequestCount) == nullptr);
    CHECK(find_row(1000) == nullptr);
    CHECK(find_row(~uint32_t(0)) == nullptr);
    CHECK(request_name(kRequestCount) == "UNKNOWN");
    CHECK(request_name(~uint32_t(0)) == "UNKNOWN");
}

TEST_CASE("requests that always reply")
{
    for (Request r : {Request::GetFeatures, Request::GetProtocolFeatures, Request::GetVringBase, Request::GetQueueNum,
                      Request::GetMaxMemSlots, Request::GetStatus}) {
        CAPTURE(row(r).name);
        CHECK(row(r).reply == Reply::always);
        CHECK(row(r).handler != nullptr);
    }
    // ADD_MEM_REG / REM_MEM_REG reply only as a REPLY_ACK ack (outside postcopy).
    CHECK(row(Request::AddMemReg).reply == Reply::ack);
    CHECK(row(Request::RemMemReg).reply == Reply::ack);
    CHECK(row(Request::SetMemTable).reply == Reply::ack);
}

TEST_CASE("well-formed messages pass the check")
{
    CHECK(reason_of(check(row(Request::GetFeatures), message(Request::GetFeatures, 0), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetFeatures), message(Request::SetFeatures, 8), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetVringNum), message(Request::SetVringNum, 8), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetVringAddr), message(Request::SetVringAddr, 40), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetVringKick), message(Request::SetVringKick, 8, 1), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetVringKick), message(Request::SetVringKick, 8, 0), 0)) == "ok");  // poll mode
    CHECK(reason_of(check(row(Request::SetVringCall), message(Request::SetVringCall, 8, 1), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetMemTable), message(Request::SetMemTable, 8 + 32, 1), 0)) == "ok");
    CHECK(reason_of(check(row(Request::SetMemTable), message(Request::SetMemTable, sizeof(MemoryTable), 8), 0)) == "ok");
}

TEST_CASE("ADD_MEM_REG needs exactly one fd")
{
    const Row& r = row(Request::AddMemReg);
    CHECK(reason_of(check(r, message(Request::AddMemReg, sizeof(SingleRegion), 1), kAllProtocol)) == "ok");
    CHECK(reason_of(check(r, message(Request::AddMemReg, sizeof(SingleRegion), 0), kAllProtocol)) == "bad_fd_count");
    CHECK(reason_of(check(r, message(Request::AddMemReg, sizeof(SingleRegion), 2), kAllProtocol)) == "bad_fd_count");
    CHECK(reason_of(check(r, message(Request::AddMemReg, sizeof(SingleRegion), 8), kAllProtocol)) == "bad_fd_count");
}

TEST_CASE("REM_MEM_REG accepts no fd or one (QEMU 5.1-7.0 sent one), not two")
{
    const Row& r = row(Request::RemMemReg);
    CHECK(reason_of(check(r, message(Request::RemMemReg, sizeof(SingleRegion), 0), kAllProtocol)) == "ok");
    CHECK(reason_of(check(r, message(Request::RemMemReg, sizeof(SingleRegion), 1), kAllProtocol)) == "ok");
    CHECK(reason_of(check(r, message(Request::RemMemReg, sizeof(SingleRegion), 2), kAllProtocol)) == "bad_fd_count");
}

TEST_CASE("payload sizes are checked against the row")
{
    const uint64_t all = kAllProtocol;
    CHECK(reason_of(check(row(Request::AddMemReg), message(Request::AddMemReg, 32, 1), all)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::AddMemReg), message(Request::AddMemReg, 41, 1), all)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::RemMemReg), message(Request::RemMemReg, 0), all)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::SetFeatures), message(Request::SetFeatures, 4), 0)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::SetFeatures), message(Request::SetFeatures, 16), 0)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::SetVringAddr), message(Request::SetVringAddr, 32), 0)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::GetFeatures), message(Request::GetFeatures, 8), 0)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::SetMemTable), message(Request::SetMemTable, 4), 0)) == "bad_payload_size");
    CHECK(reason_of(check(row(Request::SetMemTable), message(Request::SetMemTable, sizeof(MemoryTable) + 32, 1), 0)) ==
          "bad_payload_size");
}

TEST_CASE("fd counts on other requests")
{
    CHECK(reason_of(check(row(Request::SetFeatures), message(Request::SetFeatures, 8, 1), 0)) == "bad_fd_count");
    CHECK(reason_of(check(row(Request::SetVringCall), message(Request::SetVringCall, 8, 2), 0)) == "bad_fd_count");
    CHECK(reason_of(check(row(Request::SetMemTable), message(Request::SetMemTable, 8, 0), 0)) == "ok");
}

TEST_CASE("protocol-feature gating")
{
    const uint64_t slots = protocol::kConfigureMemSlots;
    CHECK(reason_of(check(row(Request::GetMaxMemSlots), message(Request::GetMaxMemSlots, 0), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::GetMaxMemSlots), message(Request::GetMaxMemSlots, 0), protocol::kMq)) ==
          "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::GetMaxMemSlots), message(Request::GetMaxMemSlots, 0), slots)) == "ok");
    CHECK(reason_of(check(row(Request::AddMemReg), message(Request::AddMemReg, 40, 1), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::AddMemReg), message(Request::AddMemReg, 40, 1), slots)) == "ok");
    CHECK(reason_of(check(row(Request::RemMemReg), message(Request::RemMemReg, 40), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::GetQueueNum), message(Request::GetQueueNum, 0), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::GetQueueNum), message(Request::GetQueueNum, 0), protocol::kMq)) == "ok");
    CHECK(reason_of(check(row(Request::SendRarp), message(Request::SendRarp, 8), protocol::kRarp)) == "ok");
    CHECK(reason_of(check(row(Request::SendRarp), message(Request::SendRarp, 8), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::NetSetMtu), message(Request::NetSetMtu, 8), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::SetStatus), message(Request::SetStatus, 8), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::GetStatus), message(Request::GetStatus, 0), protocol::kStatus)) == "ok");
    // The dirty log comes as an fd: only with LOG_SHMFD.
    CHECK(reason_of(check(row(Request::SetLogBase), message(Request::SetLogBase, 16, 1), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::SetLogBase), message(Request::SetLogBase, 16, 1), protocol::kLogShmfd)) == "ok");
    CHECK(reason_of(check(row(Request::SetLogBase), message(Request::SetLogBase, 16, 0), protocol::kLogShmfd)) == "bad_fd_count");
    // Postcopy only with PAGEFAULT.
    CHECK(reason_of(check(row(Request::PostcopyAdvise), message(Request::PostcopyAdvise, 0), 0)) == "feature_not_negotiated");
    CHECK(reason_of(check(row(Request::PostcopyAdvise), message(Request::PostcopyAdvise, 0), protocol::kPagefault)) == "ok");
    // Requests from before protocol features need none.
    CHECK(row(Request::SetMemTable).protocol_feature == 0);
    CHECK(row(Request::GetFeatures).protocol_feature == 0);
    CHECK(row(Request::SetProtocolFeatures).protocol_feature == 0);
}

TEST_CASE("unsupported requests are a clean error naming the request")
{
    for (Request r : {Request::IotlbMsg, Request::GpuSetSocket, Request::GetInflightFd, Request::SetConfig}) {
        const Row& rw = row(r);
        CAPTURE(rw.name);
        CHECK(rw.handler == nullptr);
        auto s = check(rw, message(r, rw.min_size, rw.min_fds), kAllProtocol);
        REQUIRE_FALSE(s.has_value());
        CHECK(std::string(s.error().reason) == "unsupported_request");
        CHECK(s.error().detail.find(std::string(rw.name)) != std::string::npos);
    }
}

TEST_CASE("the requests the switch needs are handled")
{
    for (Request r : {Request::GetFeatures, Request::SetFeatures, Request::SetOwner, Request::SetMemTable,
                      Request::SetVringNum, Request::SetVringAddr, Request::SetVringBase, Request::GetVringBase,
                      Request::SetVringKick, Request::SetVringCall, Request::GetProtocolFeatures,
                      Request::SetProtocolFeatures, Request::SetVringEnable, Request::GetMaxMemSlots,
                      Request::AddMemReg, Request::RemMemReg, Request::SetLogBase, Request::SetLogFd,
                      Request::PostcopyAdvise, Request::PostcopyListen, Request::PostcopyEnd}) {
        CAPTURE(uint32_t(r));
        CHECK(row(r).handler != nullptr);
    }
}

TEST_CASE("Message::as copies at most the payload it got")
{
    Message m = message(Request::SetVringAddr, 8);
    const uint32_t words[] = {3, 1, 0xdeadbeef, 0xdeadbeef};
    std::memcpy(m.payload.data(), words, sizeof words);
    const auto a = m.as<VringAddr>();
    CHECK(a.index == 3);
    CHECK(a.flags == 1);
    CHECK(a.desc == 0);  // beyond header.size: zero, not stale payload bytes
}
