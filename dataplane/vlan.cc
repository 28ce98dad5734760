// VLAN sets, 802.1Q header rewriting on bytes and on mbufs.
#include "vusw/vlan.h"

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace vusw {
namespace {

constexpr unsigned kAddrs = 12;    // destination and source MAC
constexpr unsigned kTagLen = 4;    // TPID + TCI
// A new head mbuf takes the frame after the header whole up to this length, else the
// first kHeadCopy bytes of it (so IP and L4 headers stay in the first segment, where
// the flow hash looks); copying a short frame is cheaper than cloning it.
constexpr uint32_t kCopyWhole = 512;
constexpr uint32_t kHeadCopy = 128;

// What a frame's metadata says about its buffer or about a tag that is no longer
// where it says: never carried over to a new head.
constexpr uint64_t kNotCarried =
    RTE_MBUF_F_EXTERNAL | RTE_MBUF_F_INDIRECT | RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;

// Offload requests count the tag in l2_len (offload.h): keep it pointing at the L3 header.
void move_l3(rte_mbuf* m, int delta)
{
    if (m->l2_len != 0)
        m->l2_len = uint16_t(int(m->l2_len) + delta) & 0x7f;
}

void put_be16(unsigned char* p, uint16_t v)
{
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}

// The frame in a new head, followed (when longer) by `m` or a clone of it.
rte_mbuf* rebuild(rte_mbuf* m, bool own, bool tagged_in, std::optional<uint16_t> tci_out, rte_mempool* pool)
{
    rte_mbuf* head = rte_pktmbuf_alloc(pool);
    if (head == nullptr)
        return nullptr;
    const uint32_t hdr_in = kAddrs + (tagged_in ? kTagLen : 0);
    const uint32_t hdr_out = kAddrs + (tci_out ? kTagLen : 0);
    const uint32_t rest = m->data_len - hdr_in;  // of the first segment
    const uint32_t copy = std::min(rest, rest <= kCopyWhole ? kCopyWhole : kHeadCopy);
    const auto* src = rte_pktmbuf_mtod(m, const unsigned char*);
    auto* dst = reinterpret_cast<unsigned char*>(rte_pktmbuf_append(head, uint16_t(hdr_out + copy)));
    std::memcpy(dst, src, kAddrs);
    if (tci_out) {
        put_be16(dst + kAddrs, kVlanTpid);
        put_be16(dst + kAddrs + 2, *tci_out);
    }
    std::memcpy(dst + hdr_out, src + hdr_in, copy);
    // The frame's metadata: port, RSS hash, checksum/TSO requests and results (offload.h).
    head->port = m->port;
    head->hash = m->hash;
    head->packet_type = m->packet_type;
    head->ol_flags = m->ol_flags & ~kNotCarried;
    head->tx_offload = m->tx_offload;
    move_l3(head, int(hdr_out) - int(hdr_in));
    if (m->pkt_len == hdr_in + copy) {  // all copied
        if (own)
            rte_pktmbuf_free(m);
        return head;
    }
    rte_mbuf* tail = own ? m : rte_pktmbuf_clone(m, pool);
    if (tail == nullptr) {
        rte_pktmbuf_free(head);
        return nullptr;
    }
    // A first segment holding exactly the old header leaves an empty segment here:
    // legal, and only a front-end splitting a frame after its addresses makes one.
    rte_pktmbuf_adj(tail, uint16_t(hdr_in + copy));
    if (rte_pktmbuf_chain(head, tail) != 0) {  // more segments than an mbuf chain holds
        if (!own)
            rte_pktmbuf_free(tail);
        head->next = nullptr;
        rte_pktmbuf_free(head);
        return nullptr;
    }
    return head;
}

}  // namespace

VlanSet VlanSet::all_vlans()
{
    VlanSet s;
    for (uint16_t v = 1; v <= kVlanIdMax; ++v)
        s.add(v);
    return s;
}

bool VlanSet::empty() const
{
    return std::all_of(bits_.begin(), bits_.end(), [](uint64_t w) { return w == 0; });
}

std::string VlanSet::to_string() const
{
    if (*this == all_vlans())
        return "all";
    std::string out;
    for (unsigned v = 0; v < 4096; ++v) {
        if (!contains(uint16_t(v)))
            continue;
        unsigned end = v;
        while (end + 1 < 4096 && contains(uint16_t(end + 1)))
            ++end;
        out += (out.empty() ? "" : ",") + std::to_string(v);
        if (end > v)
            out += (end == v + 1 ? "," : "-") + std::to_string(end);
        v = end;
    }
    return out;
}

std::string_view vlan_mode_name(VlanMode m)
{
    return m == VlanMode::trunk ? "trunk" : "access";
}

void write_tag_before(unsigned char* frame, uint16_t tci)
{
    std::memmove(frame - kTagLen, frame, kAddrs);
    put_be16(frame - kTagLen + kAddrs, kVlanTpid);
    put_be16(frame - kTagLen + kAddrs + 2, tci);
}

void strip_tag_in_place(unsigned char* frame)
{
    std::memmove(frame + kTagLen, frame, kAddrs);
}

void set_tci(unsigned char* frame, uint16_t tci)
{
    put_be16(frame + kAddrs + 2, tci);
}

rte_mbuf* vlan_reform(rte_mbuf* m, bool own, bool tagged_in, std::optional<uint16_t> tci_out, rte_mempool* pool)
{
    // In place only in a buffer nobody else sees: not shared, not attached to another
    // mbuf's buffer, not an external (zero-copy, guest-owned) buffer.
    const bool writable = own && RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1;
    if (writable && !(tci_out && !tagged_in && rte_pktmbuf_headroom(m) < kTagLen)) {
        auto* frame = rte_pktmbuf_mtod(m, unsigned char*);
        if (tci_out && tagged_in) {
            set_tci(frame, *tci_out);
        } else if (tci_out) {
            rte_pktmbuf_prepend(m, kTagLen);
            write_tag_before(frame, *tci_out);
            move_l3(m, kTagLen);
        } else if (tagged_in) {
            strip_tag_in_place(frame);
            rte_pktmbuf_adj(m, kTagLen);
            move_l3(m, -int(kTagLen));
        }
        m->ol_flags &= ~(RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED);
        return m;
    }
    return rebuild(m, own, tagged_in, tci_out, pool);
}

}  // namespace vusw
