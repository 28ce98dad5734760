// libFuzzer target: vhost-user header parsing and the dispatch table's check().
//
// Input: [u8 fd count][u64 negotiated protocol features][header (12 bytes)][payload...].
// Whatever a front-end sends must give a clean error or a message that satisfies its
// row; nothing may crash, and an accepted message must really fit its row.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "control/vhost_user/connection.h"
#include "control/vhost_user/dispatch.h"

using namespace vusw::vhost_user;
using vusw::fuzz::expect;
using vusw::fuzz::violated;

namespace {

bool known_reason(std::string_view r)
{
    return r == "unsupported_request" || r == "feature_not_negotiated" || r == "bad_payload_size" || r == "bad_fd_count";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (size < 9)
        return 0;
    const std::size_t nfds = data[0] % (kMaxFds + 2);
    uint64_t negotiated = 0;
    std::memcpy(&negotiated, data + 1, 8);
    const auto wire = std::as_bytes(std::span(data + 9, size - 9));

    auto header = parse_header(wire);
    if (!header) {
        const std::string_view r = header.error().reason;
        expect(r == "truncated" || r == "bad_version" || r == "oversized", "parse_header: unknown reason");
        return 0;
    }
    expect(wire.size() >= sizeof(Header), "parse_header accepted a short header");
    expect((header->flags & kVersionMask) == kVersion, "parse_header accepted a bad version");
    expect(header->size <= kMaxPayload, "parse_header accepted an oversized payload");

    Message msg;
    msg.header = *header;
    const auto payload = wire.subspan(sizeof(Header));
    std::memcpy(msg.payload.data(), payload.data(), std::min<std::size_t>(payload.size(), header->size));
    for (std::size_t i = 0; i < nfds; ++i)
        msg.fds.emplace_back(dup(devnull));

    const std::string_view name = request_name(header->request);
    expect(!name.empty(), "empty request name");
    const Row* row = find_row(header->request);
    if (row == nullptr) {
        expect(header->request == 0 || header->request >= kRequestCount, "known code without a row");
        return 0;
    }
    expect(row->name == name, "row name differs from request_name");
    auto ok = check(*row, msg, negotiated);
    if (!ok) {
        expect(known_reason(ok.error().reason), "check: unknown reason");
        return 0;
    }
    expect(row->handler != nullptr, "accepted an unsupported request");
    expect(row->protocol_feature == 0 || (negotiated & row->protocol_feature), "accepted without its feature");
    expect(msg.header.size >= row->min_size && msg.header.size <= row->max_size, "accepted a bad payload size");
    expect(msg.fds.size() >= row->min_fds && msg.fds.size() <= row->max_fds, "accepted a bad fd count");
    // What handlers do next: read the payload as their struct.
    volatile uint64_t sink = msg.as<VringAddr>().desc + msg.as<SingleRegion>().region.memory_size +
                             msg.as<MemoryTable>().nregions + msg.as<uint64_t>();
    (void)sink;
    return 0;
}
