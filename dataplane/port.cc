// Port base: counters and the hand-off ring.
#include "vusw/port.h"

#include <rte_ring.h>

#include <stdexcept>

namespace vusw {
namespace {
constexpr std::array<std::string_view, std::size_t(Drop::count_)> kDropNames = {
    "no_rx_buffer", "rx_buffer_small", "queue_not_ready", "queue_disabled", "too_many_segments",
    "oversize", "runt", "no_mbuf", "tx_full", "handoff_full", "no_destination",
    "bad_offload",
    "vlan_tagged_on_access", "vlan_not_allowed",
    "mtu_exceeded",
};
}  // namespace

std::string_view drop_name(Drop d)
{
    return kDropNames[std::size_t(d)];
}

Port::Port(std::string name, std::string_view kind) : name_(std::move(name)), kind_(kind) {}

Port::~Port()
{
    rte_ring_free(handoff_);
}

void Port::create_handoff()
{
    static unsigned serial = 0;
    const std::string ring_name = "vusw_ho" + std::to_string(serial++);
    handoff_ = rte_ring_create(ring_name.c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
    if (handoff_ == nullptr)
        throw std::runtime_error("cannot create the hand-off ring for port " + name_);
}

void Port::set_config(const PortConfig& config)
{
    config_ = config;
    set_frontend_mtu(std::nullopt);
}

void Port::set_frontend_mtu(std::optional<uint16_t> mtu)
{
    const EffectiveMtu e = vusw::effective_mtu(config_, mtu);
    mtu_word_.store(e.mtu | uint32_t(e.source) << 16, std::memory_order_relaxed);
}

EffectiveMtu Port::effective_mtu() const
{
    const uint32_t w = mtu_word_.load(std::memory_order_relaxed);
    return {uint16_t(w), MtuSource(w >> 16)};
}

PortTotals Port::totals() const
{
    PortTotals t;
    for (const PortCounters& c : counters_) {
        t.rx_packets += c.rx_packets.get();
        t.rx_bytes += c.rx_bytes.get();
        t.tx_packets += c.tx_packets.get();
        t.tx_bytes += c.tx_bytes.get();
        t.rx_zero_copy += c.rx_zero_copy.get();
        for (std::size_t i = 0; i < t.drops.size(); ++i)
            t.drops[i] += c.drops[i].get();
    }
    return t;
}

}  // namespace vusw
