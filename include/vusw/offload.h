// Checksum and segmentation offloads: the one place that translates between the
// virtio-net header and mbuf offload requests (both directions), and that decides, per
// destination, what happens to a frame asking for a checksum or for segmentation: passed
// through to a destination that takes it (a guest that negotiated GUEST_CSUM/GUEST_TSO, a
// NIC with checksum/TSO offload), or done here in software.
//
// An mbuf carries its request the DPDK way: RTE_MBUF_F_TX_TCP_CKSUM / UDP_CKSUM with
// l2_len + l3_len = where the L4 header starts and the pseudo-header sum already in the
// L4 checksum field ("partial checksum", what virtio's NEEDS_CSUM and Linux's
// CHECKSUM_PARTIAL mean too); RTE_MBUF_F_TX_TCP_SEG with tso_segsz and l4_len for a TCP
// frame larger than one segment (pseudo-header sum without the length in the field);
// RTE_MBUF_F_TX_UDP_SEG with tso_segsz (UDP payload bytes per datagram) and l4_len 8 for
// a UDP frame to be cut into datagrams (USO: every piece a whole UDP datagram, not IP
// fragments); RTE_MBUF_F_TX_IPV4 / IPV6 for the L3 type. Frames from a NIC that verified
// their checksum carry RTE_MBUF_F_RX_L4_CKSUM_GOOD.
//
// ECN (virtio 1.2 §5.1.6.2, VIRTIO_NET_HDR_GSO_ECN): a TSO frame whose TCP header has
// CWR set. The mbuf has no flag for it (DPDK has none): the CWR bit in the frame is the
// truth, read where a decision needs it. Segmenting keeps CWR on the first segment only,
// as Linux's tcp_gso_segment does; so a destination that may not do that (a guest
// without GUEST_ECN, any NIC: ethdev does not say what its TSO does with CWR) gets such
// a frame segmented here.
#pragma once

#include <rte_mbuf_core.h>

#include <cstdint>

#include "vusw/counters.h"

struct rte_mempool;

namespace vusw {

namespace virtio {
// virtio-net header (virtio 1.2 §5.1.6): 12 bytes with VERSION_1 or MRG_RXBUF, else
// without num_buffers.
struct NetHeader {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
static_assert(sizeof(NetHeader) == 12);

inline constexpr uint8_t kNetHdrNeedsCsum = 1;
inline constexpr uint8_t kNetHdrDataValid = 2;
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpv4 = 1;
inline constexpr uint8_t kGsoTcpv6 = 4;
inline constexpr uint8_t kGsoUdpL4 = 5;  // USO: VIRTIO_NET_HDR_GSO_UDP_L4
inline constexpr uint8_t kGsoEcn = 0x80;
}  // namespace virtio

// Most segments software TSO cuts one frame into (64 KiB in 1 KiB segments): the size
// of the out[] array a caller of resolve_offloads() should give for one frame.
inline constexpr uint16_t kMaxSoftwareSegments = 64;

// The mbuf flags that ask a destination for a checksum or segmentation: a burst without
// any of them needs no offload work at all (the ports' one test per frame).
inline constexpr uint64_t kOffloadRequests = RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG;

// What a destination takes as it is (guest RX: GUEST_* features; a NIC: its TX offloads),
// or, for a guest's TX ring, what the guest may ask for (CSUM, HOST_* features).
struct OffloadCaps {
    bool csum = false;  // frames with a partial TCP/UDP checksum
    bool tso4 = false;  // TCP/IPv4 frames larger than a segment
    bool tso6 = false;  // TCP/IPv6 frames larger than a segment
    bool ecn = false;   // such frames with CWR set, whole (GUEST_ECN / HOST_ECN)
    bool uso4 = false;  // UDP/IPv4 frames larger than a datagram (GUEST_USO4 / HOST_USO)
    bool uso6 = false;  // UDP/IPv6 frames larger than a datagram (GUEST_USO6 / HOST_USO)
    bool ipv4_csum = false;  // a NIC's IPv4 header checksum (a VXLAN tunnel's outer header)
};

// Guest TX: records on `m` (the frame, header stripped) what the guest's header asks
// for. False if the header does not fit the frame (offsets past its end, no IP header
// where it points, an unknown GSO type, a zero segment size) or asks for what the guest
// did not negotiate (`allowed`: a GSO type without its HOST_* feature, the ECN bit
// without HOST_ECN): the caller drops the frame as bad_offload. A partial checksum on
// something that is neither TCP nor UDP over IP is not expressible as an mbuf flag: `m`
// then gets its checksum now, in software, and must be writable (not lent); `writable`
// false makes that case fail too.
bool offload_from_header(const virtio::NetHeader& h, rte_mbuf* m, bool writable, OffloadCaps allowed);

// Guest RX: the header describing `m` to a guest that takes `caps` (num_buffers left 0).
// `m` must not ask for more than `caps` (see needs_software()).
virtio::NetHeader offload_header(const rte_mbuf* m, OffloadCaps caps);

// Whether `m` asks for a checksum or segmentation `caps` does not take.
bool needs_software(const rte_mbuf* m, OffloadCaps caps);

// Does for every frame of pkts[0..n) what `caps` cannot: segments TCP frames into
// tso_segsz pieces (new mbufs; IP lengths and ids, TCP sequence numbers and flags fixed,
// CWR on the first only), UDP frames into tso_segsz-byte datagrams (each with its own UDP
// length and checksum, IPv4 total length, id and header checksum, IPv6 payload length),
// and computes checksums the destination does not take (into a private copy when the
// frame is shared or lent). Writes the frames to send to out[], at most `max`; frames
// that cannot be made are freed and counted in `counters`. Returns how many are in out.
uint16_t resolve_offloads(rte_mbuf** pkts, uint16_t n, OffloadCaps caps, rte_mempool* pool, PortCounters& counters,
                          rte_mbuf** out, uint16_t max);

}  // namespace vusw
