// Which flow a frame belongs to, as a 32-bit hash: what spreads a guest's incoming
// traffic over its RX queues so that every frame of one flow takes the same queue and
// stays in order (the software counterpart of a NIC's RSS).
#pragma once

#include <cstdint>
#include <span>

struct rte_mbuf;

namespace vusw {

// Hash of a frame's flow key: IPv4/IPv6 source and destination addresses, plus TCP/UDP
// ports for unfragmented packets (a fragmented datagram's pieces must not part ways);
// the Ethernet addresses and type for anything else. VLAN tags are skipped. A truncated
// header hashes what is there. Pure function of the bytes.
uint32_t flow_hash(std::span<const std::byte> frame);

// The same for an mbuf: the RSS hash a NIC computed, when it did, else flow_hash() of
// the first segment.
uint32_t flow_hash(const rte_mbuf* m);

}  // namespace vusw
