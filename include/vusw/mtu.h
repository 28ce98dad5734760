// A port's MTU: which value applies, and the switch's egress check against it.
//
// The effective MTU of a port (what the switch enforces on frames sent to it) is, in
// this order:
//  1. the operator's mtu= (PortConfig, from the port's flag), when given;
//  2. else, on a vhost-user port, the MTU its front-end set with VHOST_USER_NET_SET_MTU
//     (QEMU's host_mtu=), while that session lives;
//  3. else 1500.
// A front-end may not set an MTU above an explicit mtu= (its guest would send frames the
// switch drops): NET_SET_MTU is refused. Equal or lower, it is accepted and becomes the
// port's MTU until the front-end disconnects, because the device must not pass the
// driver frames larger than the MTU it told it (virtio 1.2 §5.1.6.3.2, VIRTIO_NET_F_MTU).
//
// The switch drops a frame for a port when it is longer than MTU + 14 bytes (the Ethernet
// header), + 4 if it carries an 802.1Q tag in its bytes; a frame asking for segmentation
// (TSO, UFO) is judged by the segments it becomes, never by its own length. Drop reason
// mtu_exceeded, counted on the destination port.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "vusw/result.h"
#include "vusw/vlan.h"

struct rte_mbuf;

namespace vusw {

class Port;

inline constexpr uint32_t kEthHeaderLen = 14;  // dst, src, type: what an MTU does not count
inline constexpr uint32_t kVlanTagLen = 4;

// Where a port's effective MTU comes from.
enum class MtuSource : uint8_t { default_mtu, config, frontend };
// "default", "config", "front-end": what vuswitchctl and the JSON say.
std::string_view mtu_source_name(MtuSource s);

struct EffectiveMtu {
    uint16_t mtu = PortConfig::kDefaultMtu;
    MtuSource source = MtuSource::default_mtu;
    bool operator==(const EffectiveMtu&) const = default;
};

// The rule above, for a port with settings `c` whose front-end set `frontend` (nullopt:
// it set none, or no front-end is connected). `frontend` passed check_frontend_mtu.
constexpr EffectiveMtu effective_mtu(const PortConfig& c, std::optional<uint16_t> frontend)
{
    if (frontend)
        return {*frontend, MtuSource::frontend};
    return {c.mtu, c.mtu_given ? MtuSource::config : MtuSource::default_mtu};
}

// Whether a front-end may set MTU `mtu` (NET_SET_MTU's payload) on a port with settings
// `c`; the error (reason bad_mtu or mtu_above_port_mtu) says what to change.
Status check_frontend_mtu(const PortConfig& c, uint64_t mtu);

// PMD, before frames go to port `to`: frees the frames of pkts[0..n) longer than to's
// MTU allows and counts them (mtu_exceeded, counter slot `slot`); the others stay, in
// order, at the front of pkts. Returns how many stayed. Costs one compare per frame
// when none is longer than MTU + 14.
uint16_t drop_over_mtu(Port& to, unsigned slot, rte_mbuf** pkts, uint16_t n);

}  // namespace vusw
