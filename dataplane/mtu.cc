// The effective-MTU rule's checks and the switch's egress MTU check.
#include "vusw/mtu.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <fmt/format.h>

#include <algorithm>

#include "vusw/port.h"

namespace vusw {
namespace {

constexpr uint64_t kSegmentation = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG;

bool tagged_in_data(const rte_mbuf* m)
{
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    return m->data_len >= sizeof(rte_ether_hdr) && eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
}

// The longest frame `m` becomes on the wire: itself, or its first (largest) segment
// when it asks for segmentation; l2_len counts a tag in the frame.
uint32_t wire_len(const rte_mbuf* m)
{
    if (!(m->ol_flags & kSegmentation))
        return m->pkt_len;
    const uint32_t segment = uint32_t(m->l2_len) + m->l3_len + m->l4_len + m->tso_segsz;
    return std::min(segment, m->pkt_len);
}

bool over_mtu(const rte_mbuf* m, uint32_t max_frame)
{
    return wire_len(m) > max_frame + (tagged_in_data(m) ? kVlanTagLen : 0);
}

// drop_over_mtu from pkts[first], the first frame longer than `max_frame`, on.
uint16_t drop_from(Port& to, unsigned slot, rte_mbuf** pkts, uint16_t first, uint16_t n, uint32_t max_frame)
{
    uint16_t kept = first;
    for (uint16_t i = first; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (m->pkt_len > max_frame && over_mtu(m, max_frame))
            rte_pktmbuf_free(m);
        else
            pkts[kept++] = m;
    }
    to.counters(slot).drop(Drop::mtu_exceeded, n - kept);
    return kept;
}

}  // namespace

std::string_view mtu_source_name(MtuSource s)
{
    switch (s) {
    case MtuSource::config:
        return "config";
    case MtuSource::frontend:
        return "front-end";
    case MtuSource::default_mtu:
        break;
    }
    return "default";
}

Status check_frontend_mtu(const PortConfig& c, uint64_t mtu)
{
    if (mtu < PortConfig::kMinMtu || mtu > PortConfig::kMaxMtu)
        return fail("bad_mtu", fmt::format("NET_SET_MTU {} refused: the switch takes MTUs of {}..{}; lower the "
                                           "front-end's MTU (QEMU host_mtu=)",
                                           mtu, PortConfig::kMinMtu, PortConfig::kMaxMtu));
    if (c.mtu_given && mtu > c.mtu)
        return fail("mtu_above_port_mtu",
                    fmt::format("NET_SET_MTU {} refused: above the port's mtu={}; lower the front-end's MTU (QEMU "
                                "host_mtu=) to at most {}, or raise the port's mtu=",
                                mtu, c.mtu, c.mtu));
    return {};
}

uint16_t drop_over_mtu(Port& to, unsigned slot, rte_mbuf** pkts, uint16_t n)
{
    const uint32_t max_frame = to.max_frame_len();
    uint16_t i = 0;
    while (i < n && pkts[i]->pkt_len <= max_frame)  // no frame longer than MTU + 14: nothing to drop
        ++i;
    return i == n ? n : drop_from(to, slot, pkts, i, n, max_frame);
}

}  // namespace vusw
