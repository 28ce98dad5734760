// VXLAN tunnel ports over an ethdev underlay.
#include "ports/vxlan_port.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "vusw/flow_hash.h"
#include "vusw/offload.h"

namespace vusw {
namespace {

constexpr uint32_t kInnerMacCapacity = 4096;

std::span<const std::byte> first_segment(const rte_mbuf* m)
{
    return {rte_pktmbuf_mtod(m, const std::byte*), rte_pktmbuf_data_len(m)};
}

MacAddr mac_of_word(uint64_t w)
{
    MacAddr mac;
    for (int i = 5; i >= 0; --i, w >>= 8)
        mac[std::size_t(i)] = uint8_t(w);
    return mac;
}

// The inner frame's source or destination MAC as the FDB keys it.
uint64_t inner_mac(const rte_mbuf* m, std::size_t at)
{
    return mac_key(rte_pktmbuf_mtod_offset(m, const uint8_t*, at));
}

bool multicast(uint64_t mac)
{
    return (mac >> 40) & 1;
}

// The ethertype of a frame whose first segment holds its Ethernet header (0: it does not).
uint16_t ether_type(const rte_mbuf* m)
{
    if (rte_pktmbuf_data_len(m) < 14)
        return 0;
    const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return uint16_t(p[12] << 8 | p[13]);
}

// The VID of a frame tagged in its bytes (how the switch hands frames to a trunk,
// vlan.h); 0 (the native VLAN, never mapped) if untagged.
uint16_t tagged_vid(const rte_mbuf* m)
{
    if (ether_type(m) != kVlanTpid || rte_pktmbuf_data_len(m) < 16)
        return 0;
    const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return uint16_t((p[14] << 8 | p[15]) & kVidMask);
}

}  // namespace

std::string ipv4_text(uint32_t ip)
{
    return fmt::format("{}.{}.{}.{}", ip >> 24, ip >> 16 & 0xff, ip >> 8 & 0xff, ip & 0xff);
}

Result<std::unique_ptr<VxlanPort>> VxlanPort::open(std::string name, VxlanSettings settings,
                                                   std::unique_ptr<EthdevPort> underlay)
{
    if (settings.remotes.empty() || settings.remotes.size() > kMaxVxlanRemotes)
        return fail("config", fmt::format("vxlan port {}: give 1..{} remote= VTEPs", name, kMaxVxlanRemotes));
    rte_ether_addr addr{};
    if (int rc = rte_eth_macaddr_get(underlay->port_id(), &addr); rc != 0)
        return fail("ethdev", fmt::format("vxlan port {}: cannot read the MAC address of underlay {}: {}", name,
                                          underlay->name(), rte_strerror(-rc)));
    MacAddr mac;
    std::memcpy(mac.data(), addr.addr_bytes, mac.size());
    std::unique_ptr<VxlanPort> port(new VxlanPort(std::move(name), std::move(settings), std::move(underlay), mac));
    if (auto ok = port->prepare_queue(0); !ok)
        return std::unexpected(ok.error());
    return port;
}

VxlanPort::VxlanPort(std::string name, VxlanSettings settings, std::unique_ptr<EthdevPort> underlay, const MacAddr& mac)
    : Port(std::move(name), "vxlan", 1), settings_(std::move(settings)), underlay_(std::move(underlay)),
      vtep_{mac, settings_.local_ip, settings_.dst_port, settings_.vni},
      ip_cksum_by_nic_(underlay_->offloads().ipv4_csum),
      hops_(next_hops(settings_.remotes, settings_.local_ip, settings_.prefix, settings_.gateway)),
      unknown_neighbours_(unsigned(hops_.neighbours.size())),
      inner_macs_(kInnerMacCapacity)
{
    if (settings_.vni_map.empty())
        return;
    map_.emplace(settings_.vni_map);
    vtep_.map = &*map_;
    for (auto& by_segment : vni_counters_)
        by_segment = std::vector<VniCounters>(map_->size());
}

std::vector<VniVlan> VxlanPort::vnis() const
{
    return map_ ? settings_.vni_map : std::vector<VniVlan>{VniVlan{settings_.vni, 0}};
}

int VxlanPort::remote_index(uint32_t ip) const
{
    const auto it = std::find(settings_.remotes.begin(), settings_.remotes.end(), ip);
    return it == settings_.remotes.end() ? -1 : int(it - settings_.remotes.begin());
}

int VxlanPort::neighbour_index(uint32_t ip) const
{
    const auto it = std::find(hops_.neighbours.begin(), hops_.neighbours.end(), ip);
    return it == hops_.neighbours.end() ? -1 : int(it - hops_.neighbours.begin());
}

std::optional<MacAddr> VxlanPort::neighbour(std::size_t i) const
{
    const uint64_t w = neighbours_[hops_.of_remote[i]].mac.load(std::memory_order_relaxed);
    return w & kKnown ? std::optional(mac_of_word(w)) : std::nullopt;
}

void VxlanPort::learn_neighbour(PmdContext& ctx, std::size_t n, const MacAddr& mac)
{
    const uint64_t before = neighbours_[n].mac.load(std::memory_order_relaxed);
    const uint64_t now = kKnown | mac_key(mac.data());
    if (before == now)
        return;  // every ARP from a next hop teaches its MAC again: count what changed
    unknown_neighbours_ -= (before & kKnown) == 0;
    neighbours_[n].mac.store(now, std::memory_order_relaxed);
    vx_counters_[ctx.slot].neighbours_learned.add();
}

std::array<std::size_t, kMaxVxlanRemotes> VxlanPort::inner_macs_by_remote() const
{
    std::array<std::size_t, kMaxVxlanRemotes> n{};
    for (const FdbEntry& e : inner_macs_.entries())
        if (e.port < n.size())
            ++n[e.port];
    return n;
}

VxlanTotals VxlanPort::vxlan_totals() const
{
    VxlanTotals t;
    t.vni_encapsulated.assign(map_ ? map_->size() : 1, 0);
    t.vni_decapsulated.assign(t.vni_encapsulated.size(), 0);
    for (const std::vector<VniCounters>& by_segment : vni_counters_) {
        for (std::size_t i = 0; i < by_segment.size(); ++i) {
            t.vni_encapsulated[i] += by_segment[i].encapsulated.get();
            t.vni_decapsulated[i] += by_segment[i].decapsulated.get();
        }
    }
    for (const VxlanCounters& c : vx_counters_) {
        t.arp_requests_sent += c.arp_requests_sent.get();
        t.arp_replies_sent += c.arp_replies_sent.get();
        t.arp_received += c.arp_received.get();
        t.neighbours_learned += c.neighbours_learned.get();
        for (std::size_t r = 0; r < kMaxVxlanRemotes; ++r) {
            t.encapsulated[r] += c.encapsulated[r].get();
            t.decapsulated[r] += c.decapsulated[r].get();
        }
    }
    if (!map_) {  // the one VNI: what went to and came from every remote
        for (std::size_t r = 0; r < kMaxVxlanRemotes; ++r) {
            t.vni_encapsulated[0] += t.encapsulated[r];
            t.vni_decapsulated[0] += t.decapsulated[r];
        }
    }
    return t;
}

// ---- receive: underlay -> switch

uint16_t VxlanPort::receive(PmdContext& ctx, uint16_t, rte_mbuf** pkts, uint16_t max)
{
    if (unknown_neighbours_ > 0)
        ask_neighbours(ctx);
    const uint16_t n = underlay_->receive(ctx, 0, pkts, max);
    uint16_t kept = 0;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const UnderlayVerdict v = classify_underlay(first_segment(m), rte_pktmbuf_pkt_len(m), vtep_);
        if (v.kind == UnderlayKind::vxlan && take_vxlan(ctx, m, v)) {
            bytes += rte_pktmbuf_pkt_len(m);
            pkts[kept++] = m;
        } else if (v.kind == UnderlayKind::arp) {
            take_arp(ctx, m);
        } else if (v.kind == UnderlayKind::drop) {
            drop(ctx, m, v.reason);
        }
    }
    PortCounters& c = counters(ctx.slot);
    c.rx_packets.add(kept);
    c.rx_bytes.add(bytes);
    send_staged(ctx);  // ARP replies
    return kept;
}

void VxlanPort::drop(PmdContext& ctx, rte_mbuf* m, Drop why)
{
    counters(ctx.slot).drop(why);
    rte_pktmbuf_free(m);
}

bool VxlanPort::take_vxlan(PmdContext& ctx, rte_mbuf* m, const UnderlayVerdict& v)
{
    const int r = remote_index(v.src_ip);
    if (r < 0) {
        drop(ctx, m, Drop::vxlan_unknown_remote);
        return false;
    }
    if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD) {  // a UDP checksum was given
        drop(ctx, m, Drop::vxlan_bad_checksum);
        return false;
    }
    if (!vxlan_decap(m, v)) {
        drop(ctx, m, Drop::vxlan_bad_header);
        return false;
    }
    uint16_t vlan = 0;  // the inner-MAC map's key: the VNI's VLAN, 0 with one VNI
    if (map_) {
        if (!enter_vlan(ctx, m, v.segment))
            return false;
        vlan = m->vlan_tci;
    }
    if (const uint64_t src = inner_mac(m, 6); !multicast(src))
        inner_macs_.learn(src, vlan, uint16_t(r));
    vx_counters_[ctx.slot].decapsulated[std::size_t(r)].add();
    return true;
}

bool VxlanPort::enter_vlan(PmdContext& ctx, rte_mbuf* m, uint16_t segment)
{
    if (ether_type(m) == kVlanTpid) {  // its own tag would choose its VLAN: a VNI is an access segment
        drop(ctx, m, Drop::vlan_tagged_on_access);
        return false;
    }
    m->vlan_tci = (*map_)[segment].vlan;  // the switch reads a stripped tag here (L2Switch::classify)
    m->ol_flags |= RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
    vni_counters_[ctx.slot][segment].decapsulated.add();
    return true;
}

void VxlanPort::take_arp(PmdContext& ctx, rte_mbuf* m)
{
    const auto arp = parse_arp(first_segment(m));
    if (!arp) {
        drop(ctx, m, Drop::underlay_other);
        return;
    }
    VxlanCounters& c = vx_counters_[ctx.slot];
    c.arp_received.add();
    if (const int n = neighbour_index(arp->sender_ip); n >= 0)  // RFC 826: learn the sender from any ARP
        learn_neighbour(ctx, std::size_t(n), arp->sender_mac);
    if (arp->op != kArpRequest || arp->target_ip != vtep_.ip || m->nb_segs != 1) {
        rte_pktmbuf_free(m);  // a reply (learned above) or a question for another host: not a drop of ours
        return;
    }
    const ArpPacket reply{kArpReply, vtep_.mac, vtep_.ip, arp->sender_mac, arp->sender_ip};
    write_arp(std::span<std::byte, kArpFrameLen>(rte_pktmbuf_mtod(m, std::byte*), kArpFrameLen), arp->sender_mac, reply);
    m->data_len = uint16_t(kArpFrameLen);
    m->pkt_len = kArpFrameLen;
    m->ol_flags = 0;
    c.arp_replies_sent.add();
    staged_[n_staged_++] = m;
    if (n_staged_ == kStage)
        send_staged(ctx);
}

void VxlanPort::ask_neighbours(PmdContext& ctx)
{
    const uint64_t now = rte_get_tsc_cycles();
    for (std::size_t n = 0; n < hops_.neighbours.size(); ++n) {
        Neighbour& hop = neighbours_[n];
        if ((hop.mac.load(std::memory_order_relaxed) & kKnown) || now < hop.next_arp_tsc)
            continue;
        hop.next_arp_tsc = now + rte_get_tsc_hz();
        send_arp_request(ctx, n);
    }
}

void VxlanPort::send_arp_request(PmdContext& ctx, std::size_t n)
{
    rte_mbuf* m = rte_pktmbuf_alloc(ctx.pool);
    if (m == nullptr) {
        counters(ctx.slot).drop(Drop::no_mbuf);
        return;
    }
    const ArpPacket request{kArpRequest, vtep_.mac, vtep_.ip, MacAddr{}, hops_.neighbours[n]};
    auto* bytes = reinterpret_cast<std::byte*>(rte_pktmbuf_append(m, kArpFrameLen));
    write_arp(std::span<std::byte, kArpFrameLen>(bytes, kArpFrameLen), kBroadcastMac, request);
    vx_counters_[ctx.slot].arp_requests_sent.add();
    underlay_->transmit(ctx, 0, &m, 1);
}

// ---- transmit: switch -> underlay

void VxlanPort::transmit(PmdContext& ctx, uint16_t, rte_mbuf** pkts, uint16_t n)
{
    std::array<rte_mbuf*, kMaxSoftwareSegments> done;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        uint16_t segment = 0;
        if (map_ && (m = leave_vlan(ctx, m, segment)) == nullptr)
            continue;
        if ((m->ol_flags & kOffloadRequests) == 0) {
            encap_frame(ctx, m, segment);
            continue;
        }
        // The underlay would apply checksum and segmentation requests to the outer
        // headers: the inner frame gets them in software first.
        const uint16_t made =
            resolve_offloads(&m, 1, OffloadCaps{}, ctx.pool, counters(ctx.slot), done.data(), uint16_t(done.size()));
        for (uint16_t k = 0; k < made; ++k)
            encap_frame(ctx, done[k], segment);
    }
    send_staged(ctx);
}

rte_mbuf* VxlanPort::leave_vlan(PmdContext& ctx, rte_mbuf* m, uint16_t& segment)
{
    const int s = map_->of_vlan(tagged_vid(m));
    if (s == VniMap::kNone) {
        drop(ctx, m, Drop::vxlan_no_vni);
        return nullptr;
    }
    // A flood may share m with other ports (vlan_reform's `own`): then it gets a new head
    // and our reference goes; a frame ours alone loses its tag in place.
    const bool alone = rte_mbuf_refcnt_read(m) == 1;
    rte_mbuf* untagged = vlan_reform(m, alone, true, std::nullopt, ctx.pool);
    if (untagged == nullptr) {
        drop(ctx, m, Drop::no_mbuf);
        return nullptr;
    }
    if (!alone)
        rte_pktmbuf_free(m);
    segment = uint16_t(s);
    return untagged;
}

void VxlanPort::encap_frame(PmdContext& ctx, rte_mbuf* m, uint16_t segment)
{
    const uint16_t src_port = vxlan_source_port(flow_hash(m));
    const uint64_t dst = inner_mac(m, 0);
    const uint16_t vlan = map_ ? (*map_)[segment].vlan : 0;
    const uint16_t r = multicast(dst) ? Fdb::kUnknown : inner_macs_.lookup(dst, vlan);
    if (r < settings_.remotes.size()) {
        encap_to(ctx, r, m, src_port, segment);
        return;
    }
    const std::size_t n = settings_.remotes.size();  // head-end replication: one reference per remote
    if (n > 1)
        rte_pktmbuf_refcnt_update(m, int16_t(n - 1));
    for (std::size_t k = 0; k < n; ++k)
        encap_to(ctx, k, m, src_port, segment);
}

void VxlanPort::encap_to(PmdContext& ctx, std::size_t r, rte_mbuf* m, uint16_t src_port, uint16_t segment)
{
    const uint64_t w = neighbours_[hops_.of_remote[r]].mac.load(std::memory_order_relaxed);
    if ((w & kKnown) == 0) {
        drop(ctx, m, Drop::no_neighbour);
        ask_neighbours(ctx);
        return;
    }
    const uint32_t vni = map_ ? (*map_)[segment].vni : vtep_.vni;
    const VxlanOuter o{vtep_.mac, mac_of_word(w), vtep_.ip, settings_.remotes[r], vtep_.port, vni};
    const uint32_t inner_len = rte_pktmbuf_pkt_len(m);
    rte_mbuf* out = vxlan_encap(m, o, src_port, ctx.pool, ip_cksum_by_nic_);
    if (out == nullptr) {  // no header mbuf, or no room for one more segment
        drop(ctx, m, m->nb_segs >= RTE_MBUF_MAX_NB_SEGS ? Drop::too_many_segments : Drop::no_mbuf);
        return;
    }
    PortCounters& c = counters(ctx.slot);
    c.tx_packets.add();
    c.tx_bytes.add(inner_len);
    queue_counters(0).tx_packets.add();
    vx_counters_[ctx.slot].encapsulated[r].add();
    if (map_)
        vni_counters_[ctx.slot][segment].encapsulated.add();
    staged_[n_staged_++] = out;
    if (n_staged_ == kStage)
        send_staged(ctx);
}

void VxlanPort::send_staged(PmdContext& ctx)
{
    if (n_staged_ == 0)
        return;
    underlay_->transmit(ctx, 0, staged_.data(), n_staged_);
    n_staged_ = 0;
}

}  // namespace vusw
