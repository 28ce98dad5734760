// vhost-user wire format as a front-end sees it (QEMU docs/interop/vhost-user.rst).
// Kept separate from the daemon's own definitions on purpose: the integration tests
// must catch a daemon that misreads the spec, so they cannot share its structs.
#pragma once

#include <cstdint>
#include <type_traits>

namespace vusw::it {

// Front-end -> back-end request codes, spec names.
enum class Req : uint32_t {
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
  PostcopyAdvise = 28,
  PostcopyListen = 29,
  PostcopyEnd = 30,
  GetMaxMemSlots = 36,
  AddMemReg = 37,
  RemMemReg = 38,
  SetStatus = 39,
  GetStatus = 40,
};

// Header flags: version in bits 0-1 (must be 1), REPLY bit 2, NEED_REPLY bit 3.
inline constexpr uint32_t kVersion1 = 0x1;
inline constexpr uint32_t kFlagReply = 0x4;
inline constexpr uint32_t kFlagNeedReply = 0x8;

// SET_VRING_KICK/CALL/ERR payload: bits 0-7 ring index, bit 8 "no fd".
inline constexpr uint64_t kVringNoFd = 1ull << 8;

// virtio / vhost feature bits.
namespace feat {
inline constexpr uint64_t kCsum = 1ull << 0;
inline constexpr uint64_t kGuestCsum = 1ull << 1;
inline constexpr uint64_t kGuestTso4 = 1ull << 7;
inline constexpr uint64_t kGuestTso6 = 1ull << 8;
inline constexpr uint64_t kGuestEcn = 1ull << 9;
inline constexpr uint64_t kHostTso4 = 1ull << 11;
inline constexpr uint64_t kHostTso6 = 1ull << 12;
inline constexpr uint64_t kHostEcn = 1ull << 13;
inline constexpr uint64_t kMrgRxbuf = 1ull << 15;
inline constexpr uint64_t kMq = 1ull << 22;  // VIRTIO_NET_F_MQ
inline constexpr uint64_t kLogAll = 1ull << 26;  // VHOST_F_LOG_ALL
inline constexpr uint64_t kIndirectDesc = 1ull << 28;
inline constexpr uint64_t kEventIdx = 1ull << 29;
inline constexpr uint64_t kProtocolFeatures = 1ull << 30;
inline constexpr uint64_t kVersion1 = 1ull << 32;
inline constexpr uint64_t kRingPacked = 1ull << 34;
inline constexpr uint64_t kInOrder = 1ull << 35;
inline constexpr uint64_t kGuestUso4 = 1ull << 54;
inline constexpr uint64_t kGuestUso6 = 1ull << 55;
inline constexpr uint64_t kHostUso = 1ull << 56;
}  // namespace feat

// VHOST_USER_PROTOCOL_F_* bits.
namespace pfeat {
inline constexpr uint64_t kMq = 1ull << 0;
inline constexpr uint64_t kLogShmfd = 1ull << 1;
inline constexpr uint64_t kRarp = 1ull << 2;
inline constexpr uint64_t kReplyAck = 1ull << 3;
inline constexpr uint64_t kNetMtu = 1ull << 4;
inline constexpr uint64_t kPagefault = 1ull << 8;  // postcopy
inline constexpr uint64_t kConfigureMemSlots = 1ull << 15;
}  // namespace pfeat

struct MsgHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(MsgHeader) == 12);

struct MemRegionDesc {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemRegionDesc) == 32);

// SET_MEM_TABLE payload; the classic table holds at most 8 regions.
inline constexpr uint32_t kMaxMemTableRegions = 8;
struct MemTableMsg {
  uint32_t nregions;
  uint32_t padding;
  MemRegionDesc regions[kMaxMemTableRegions];
};
static_assert(sizeof(MemTableMsg) == 8 + 8 * 32);

// ADD_MEM_REG / REM_MEM_REG payload ("VhostUserMemRegMsg").
struct MemRegMsg {
  uint64_t padding;
  MemRegionDesc region;
};
static_assert(sizeof(MemRegMsg) == 40);

struct VringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);
inline constexpr uint32_t kVringFLog = 1;  // VringAddr::flags: log_guest_addr is valid

// SET_LOG_BASE payload ("VhostUserLog").
struct LogBaseMsg {
  uint64_t mmap_size;
  uint64_t mmap_offset;
};
static_assert(sizeof(LogBaseMsg) == 16);

// Split virtqueue layout (virtio 1.x, 2.7).
inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;

struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);

// used->flags: the device asks not to be kicked (2.7.10, without EVENT_IDX).
inline constexpr uint16_t kUsedFNoNotify = 1;

struct VringUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8);

// Packed virtqueue layout (virtio 1.2, 2.8). The descriptor flags above keep
// their meaning; AVAIL and USED carry the wrap counters.
inline constexpr uint16_t kDescFAvail = 1 << 7;
inline constexpr uint16_t kDescFUsed = 1 << 15;

struct PackedDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t id;
  uint16_t flags;
};
static_assert(sizeof(PackedDesc) == 16);

// Event suppression structure (2.8.10): one for the driver, one for the device.
struct PackedEvent {
  uint16_t off_wrap;  // ring offset in bits 0-14, wrap counter in bit 15
  uint16_t flags;
};
static_assert(sizeof(PackedEvent) == 4);
inline constexpr uint16_t kEventFlagEnable = 0;
inline constexpr uint16_t kEventFlagDisable = 1;
inline constexpr uint16_t kEventFlagDesc = 2;  // only with EVENT_IDX

// SET/GET_VRING_BASE with a packed ring: index | wrap counter << 15; QEMU puts the
// used index and wrap counter in bits 16-31 as well.
inline constexpr uint32_t kPackedWrapBit = 1u << 15;

// virtio-net header; with VERSION_1 or MRG_RXBUF it is always these 12 bytes.
// flags and gso_type values (virtio 1.2 §5.1.6).
inline constexpr uint8_t kHdrNeedsCsum = 1;
inline constexpr uint8_t kGsoTcpv4 = 1;
inline constexpr uint8_t kGsoTcpv6 = 4;
inline constexpr uint8_t kGsoUdpL4 = 5;
inline constexpr uint8_t kGsoEcn = 0x80;
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == 12);

static_assert(std::is_trivially_copyable_v<MemTableMsg> && std::is_trivially_copyable_v<VringAddr>);

}  // namespace vusw::it
