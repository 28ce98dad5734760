// vhost-user wire format (QEMU docs/interop/vhost-user.rst, "Message Specification").
//
// Trivially copyable structs with the spec's layout, request codes with the spec's
// names. Parsing never trusts a size: see parser.h and dispatch.h.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <string>
#include <vector>

#include "vusw/unique_fd.h"

namespace vusw::vhost_user {

enum class Request : uint32_t {
    None = 0,
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SendRarp = 19,
    NetSetMtu = 20,
    SetBackendReqFd = 21,
    IotlbMsg = 22,
    SetVringEndian = 23,
    GetConfig = 24,
    SetConfig = 25,
    CreateCryptoSession = 26,
    CloseCryptoSession = 27,
    PostcopyAdvise = 28,
    PostcopyListen = 29,
    PostcopyEnd = 30,
    GetInflightFd = 31,
    SetInflightFd = 32,
    GpuSetSocket = 33,
    ResetDevice = 34,
    VringKick = 35,
    GetMaxMemSlots = 36,
    AddMemReg = 37,
    RemMemReg = 38,
    SetStatus = 39,
    GetStatus = 40,
};
inline constexpr uint32_t kRequestCount = 41;

inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kReplyFlag = 0x4;
inline constexpr uint32_t kNeedReplyFlag = 0x8;

struct Header {
    uint32_t request;
    uint32_t flags;
    uint32_t size;  // payload bytes after the header
};
static_assert(sizeof(Header) == 12);

struct VringState {
    uint32_t index;
    uint32_t num;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc;
    uint64_t used;
    uint64_t avail;
    uint64_t log;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};
static_assert(sizeof(MemRegion) == 32);

inline constexpr uint32_t kMaxMemTableRegions = 8;  // SET_MEM_TABLE's fixed array
struct MemoryTable {
    uint32_t nregions;
    uint32_t padding;
    MemRegion regions[kMaxMemTableRegions];
};
static_assert(sizeof(MemoryTable) == 8 + 8 * 32);

struct SingleRegion {  // ADD_MEM_REG / REM_MEM_REG
    uint64_t padding;
    MemRegion region;
};
static_assert(sizeof(SingleRegion) == 40);

// SET_VRING_KICK/CALL/ERR payload: bits 0-7 ring index, bit 8 "no fd: poll instead".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFdFlag = 0x100;
// SET_VRING_ADDR flags: VHOST_VRING_F_LOG, `log` holds the used ring's log address.
inline constexpr uint32_t kVringFlagLog = 1;

// SET_LOG_BASE payload (with LOG_SHMFD).
struct LogBase {
    uint64_t mmap_size;
    uint64_t mmap_offset;
};
static_assert(sizeof(LogBase) == 16);

// Largest payload any request we accept carries; anything larger is a framing error.
inline constexpr uint32_t kMaxPayload = 4096;
// Most fds one message may carry (SET_MEM_TABLE's 8 regions).
inline constexpr std::size_t kMaxFds = 8;

// Feature bits (virtio 1.2 and vhost-user).
namespace feature {
inline constexpr uint64_t kCsum = 1ull << 0;           // device takes partial checksums (guest TX)
inline constexpr uint64_t kGuestCsum = 1ull << 1;      // guest takes partial checksums (guest RX)
inline constexpr uint64_t kNetMtu = 1ull << 3;
inline constexpr uint64_t kGuestTso4 = 1ull << 7;
inline constexpr uint64_t kGuestTso6 = 1ull << 8;
inline constexpr uint64_t kGuestEcn = 1ull << 9;       // guest takes TSO frames with CWR set (needs GUEST_TSO4/6)
inline constexpr uint64_t kHostTso4 = 1ull << 11;
inline constexpr uint64_t kHostTso6 = 1ull << 12;
inline constexpr uint64_t kHostEcn = 1ull << 13;       // device takes TSO frames with CWR set (needs HOST_TSO4/6)
inline constexpr uint64_t kMrgRxbuf = 1ull << 15;
inline constexpr uint64_t kMq = 1ull << 22;            // VIRTIO_NET_F_MQ
inline constexpr uint64_t kLogAll = 1ull << 26;        // VHOST_F_LOG_ALL: log guest writes (migration)
inline constexpr uint64_t kIndirectDesc = 1ull << 28;
inline constexpr uint64_t kEventIdx = 1ull << 29;
inline constexpr uint64_t kProtocolFeatures = 1ull << 30;
inline constexpr uint64_t kVersion1 = 1ull << 32;
inline constexpr uint64_t kRingPacked = 1ull << 34;   // VIRTIO_F_RING_PACKED
inline constexpr uint64_t kInOrder = 1ull << 35;
inline constexpr uint64_t kGuestUso4 = 1ull << 54;     // guest takes UDP/IPv4 segmentation (needs GUEST_CSUM)
inline constexpr uint64_t kGuestUso6 = 1ull << 55;     // guest takes UDP/IPv6 segmentation (needs GUEST_CSUM)
inline constexpr uint64_t kHostUso = 1ull << 56;       // device takes UDP segmentation (needs CSUM)
}  // namespace feature

namespace protocol {
inline constexpr uint64_t kMq = 1ull << 0;
inline constexpr uint64_t kLogShmfd = 1ull << 1;
inline constexpr uint64_t kRarp = 1ull << 2;
inline constexpr uint64_t kReplyAck = 1ull << 3;
inline constexpr uint64_t kNetMtu = 1ull << 4;
inline constexpr uint64_t kPagefault = 1ull << 8;  // postcopy (userfaultfd)
inline constexpr uint64_t kConfigureMemSlots = 1ull << 15;
inline constexpr uint64_t kStatus = 1ull << 16;
}  // namespace protocol

// The spec names of the set bits ("MRG_RXBUF", "RING_PACKED", ...; "bit N" for bits this
// back-end has no name for), lowest bit first: what `vuswitchctl show ports` prints.
std::vector<std::string> feature_names(uint64_t features);
std::vector<std::string> protocol_feature_names(uint64_t features);

// One received message: header, payload bytes, and the fds that came with it (closed
// when the message goes away unless a handler takes them).
struct Message {
    Header header{};
    std::array<std::byte, kMaxPayload> payload{};
    std::vector<UniqueFd> fds;

    Request request() const { return Request(header.request); }
    bool need_reply() const { return header.flags & kNeedReplyFlag; }

    // The payload as T; the dispatcher has checked the size first.
    template <class T>
    T as() const
    {
        static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kMaxPayload);
        T value{};
        std::copy_n(payload.data(), std::min<std::size_t>(sizeof(T), header.size), reinterpret_cast<std::byte*>(&value));
        return value;
    }
};

}  // namespace vusw::vhost_user
