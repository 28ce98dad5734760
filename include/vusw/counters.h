// Per-core packet counters.
//
// Every counter has exactly one writer (a PMD core, or the control thread), so an
// increment is a relaxed load and store, not a locked instruction. Readers (the metrics
// exporter, vuswitchctl) sum the per-core copies on demand.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace vusw {

// Upper bound of PMD cores; slot kMaxPmds belongs to the control thread.
inline constexpr unsigned kMaxPmds = 16;
inline constexpr unsigned kControlSlot = kMaxPmds;

class Counter {
public:
    void add(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void set(uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};

// Why a packet did not make it. Stable names: they are metric labels.
enum class Drop : uint8_t {
    no_rx_buffer,       // the guest posted no (or too few) RX buffers
    rx_buffer_small,    // without MRG_RXBUF, the posted buffer cannot hold the frame
    queue_not_ready,    // destination queue not started, disabled, or broken
    queue_disabled,     // guest transmitted on a disabled ring: discarded (spec "Ring states")
    too_many_segments,  // descriptor chain longer than we gather
    oversize,           // frame larger than the largest frame we switch
    runt,               // shorter than an Ethernet header
    no_mbuf,            // mbuf pool exhausted
    tx_full,            // NIC transmit queue full
    handoff_full,       // another core's hand-off ring full
    no_destination,     // no other port to send to (in the frame's VLAN)
    bad_offload,        // a virtio-net header asking for a checksum/segmentation that does not fit the frame
    vlan_tagged_on_access,  // an 802.1Q-tagged frame received on an access port
    vlan_not_allowed,   // a trunk received a frame of a VLAN it does not carry (trunks=)
    mtu_exceeded,       // longer than the destination port's MTU allows (mtu.h)
    // VXLAN tunnel ports (vxlan.h), on what their underlay NIC receives and on encapsulation:
    underlay_other,     // not VXLAN or ARP for this VTEP (other MAC, IP, protocol, UDP port)
    vxlan_bad_header,   // outer IPv4/UDP/VXLAN headers truncated or inconsistent
    vxlan_fragment,     // outer IPv4 fragment (VTEPs do not fragment, RFC 7348 4.3)
    vxlan_bad_checksum, // outer IPv4 header checksum (or one the NIC found bad)
    vxlan_bad_flags,    // VXLAN header without its I flag
    vxlan_unknown_vni,  // a VNI this tunnel does not carry
    vxlan_unknown_remote,  // from a VTEP not among the tunnel's remote= addresses
    no_neighbour,       // to a remote VTEP whose MAC is not known yet (an ARP request went out)
    vxlan_no_vni,       // a tunnel with a VNI map (vni=N:VID) got a frame of a VLAN it maps to no VNI
    count_
};
std::string_view drop_name(Drop d);

struct alignas(64) PortCounters {
    Counter rx_packets;  // frames the switch received from the port
    Counter rx_bytes;
    Counter tx_packets;  // frames the switch delivered to the port
    Counter tx_bytes;
    Counter rx_zero_copy;  // of rx_packets: lent to the switch without a copy
    std::array<Counter, std::size_t(Drop::count_)> drops;

    void drop(Drop why, uint64_t n = 1) noexcept { drops[std::size_t(why)].add(n); }
};

// One queue of a port: written by the core that owns the queue only.
struct QueueCounters {
    Counter rx_packets;  // frames received from the queue into the switch
    Counter tx_packets;  // frames delivered into the queue
};

// A sum over all cores' copies, for readers.
struct PortTotals {
    uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, rx_zero_copy = 0;
    std::array<uint64_t, std::size_t(Drop::count_)> drops{};
};

}  // namespace vusw
