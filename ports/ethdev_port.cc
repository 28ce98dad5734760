// DPDK ethdev ports.
#include "ports/ethdev_port.h"

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "vusw/log.h"

namespace vusw {
namespace {

constexpr uint16_t kRingSize = 1024;
constexpr uint64_t kTxChecksums = RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
constexpr uint64_t kTxTso = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | kTxChecksums;
constexpr uint64_t kTxUso = RTE_ETH_TX_OFFLOAD_UDP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | kTxChecksums;
constexpr uint64_t kRxChecksums = RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
// What a received frame of MTU n may take beyond n: header, one 802.1Q tag, CRC.
constexpr uint32_t kRxOverhead = RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN + RTE_ETHER_CRC_LEN;

// The TX offloads a device has, all or nothing per kind.
OffloadCaps caps_of(uint64_t tx_capa)
{
    OffloadCaps caps;
    caps.csum = (tx_capa & kTxChecksums) == kTxChecksums;
    caps.tso4 = (tx_capa & kTxTso) == kTxTso;
    caps.tso6 = caps.tso4;  // DPDK's TCP_TSO covers both
    caps.uso4 = caps.uso6 = (tx_capa & kTxUso) == kTxUso;
    caps.ipv4_csum = (tx_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    // ecn stays false: ethdev has no flag for it and does not report what a device's TSO
    // does with CWR on the segments after the first (a per-device flag mask in hardware),
    // so a TSO frame with CWR set is segmented in software, CWR on its first segment only
    // (rare: once per congestion event).
    return caps;
}

// The largest MTU the device takes, counted as ethdev counts it: its max_mtu, and its
// longest frame (max_rx_pktlen) less the overhead it implies (header and CRC unless the
// two limits say otherwise).
uint32_t device_max_mtu(const rte_eth_dev_info& info)
{
    const uint32_t overhead = info.max_mtu != UINT16_MAX && info.max_rx_pktlen > info.max_mtu
                                  ? info.max_rx_pktlen - info.max_mtu
                                  : RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
    const uint32_t by_frame = info.max_rx_pktlen > overhead ? info.max_rx_pktlen - overhead : 0;
    return std::min<uint32_t>(info.max_mtu, by_frame);
}

Status check_mtu(const rte_eth_dev_info& info, uint16_t mtu)
{
    const uint32_t max = device_max_mtu(info);
    if (mtu > max)
        return fail("ethdev", fmt::format("the device takes an MTU of at most {} (its longest frame is {} bytes), not {}: "
                                          "give the port mtu={} or less, or use a device that takes jumbo frames",
                                          max, info.max_rx_pktlen, mtu, max));
    if (mtu < info.min_mtu)
        return fail("ethdev", fmt::format("the device takes an MTU of at least {}, not {}: give the port mtu={} or more",
                                          info.min_mtu, mtu, info.min_mtu));
    return {};
}

// Receive side: the MTU, checksum validation, and RX scatter when a frame of the MTU
// does not fit one mbuf (chains of mbufs; the switch and the guest RX path take them).
void configure_rx(const rte_eth_dev_info& info, uint16_t mtu, rte_mempool* pool, rte_eth_conf& conf,
                  const std::string& devargs)
{
    conf.rxmode.mtu = mtu;
    // Frames whose checksum the device verified reach guests marked DATA_VALID.
    conf.rxmode.offloads = info.rx_offload_capa & kRxChecksums;
    const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
    if (mtu + kRxOverhead <= room)
        return;
    if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
    else
        log(LogLevel::warn, "--nic {}: frames of MTU {} do not fit one {}-byte packet buffer and the device offers no "
                            "RX scatter: it receives them only if its driver chains buffers by itself (net_pcap does)",
            devargs, mtu, room);
}

// The MTU for drivers that apply it only through their MTU call (net_tap and
// net_af_packet set their kernel interface's); some have none (net_pcap): fine.
Status apply_mtu(uint16_t port, uint16_t mtu)
{
    const int rc = rte_eth_dev_set_mtu(port, mtu);
    if (rc != 0 && rc != -ENOTSUP)
        return fail("ethdev", fmt::format("cannot set MTU {}: {}", mtu, rte_strerror(-rc)));
    return {};
}

Status configure(uint16_t port, uint16_t mtu, rte_mempool* pool, OffloadCaps& caps, const std::string& devargs)
{
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port, &info); rc != 0)
        return fail("ethdev", fmt::format("cannot query device info: {}", rte_strerror(-rc)));
    if (auto ok = check_mtu(info, mtu); !ok)
        return ok;
    rte_eth_conf conf{};
    // Frames from guests can be larger than one mbuf: transmit mbuf chains where possible.
    // Checksums and segmentation guests ask for go to the device when it can do them.
    caps = caps_of(info.tx_offload_capa);
    conf.txmode.offloads = info.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_MULTI_SEGS | (caps.csum ? kTxChecksums : 0) |
                                                    (caps.tso4 ? kTxTso : 0) | (caps.uso4 ? kTxUso : 0) |
                                                    RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
    configure_rx(info, mtu, pool, conf, devargs);
    if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc != 0)
        return fail("ethdev", fmt::format("cannot configure: {}", rte_strerror(-rc)));
    if (auto ok = apply_mtu(port, mtu); !ok)
        return ok;
    const int socket = rte_eth_dev_socket_id(port);
    if (int rc = rte_eth_rx_queue_setup(port, 0, kRingSize, socket, nullptr, pool); rc != 0)
        return fail("ethdev", fmt::format("cannot set up the RX queue: {}", rte_strerror(-rc)));
    if (int rc = rte_eth_tx_queue_setup(port, 0, kRingSize, socket, nullptr); rc != 0)
        return fail("ethdev", fmt::format("cannot set up the TX queue: {}", rte_strerror(-rc)));
    if (int rc = rte_eth_dev_start(port); rc != 0)
        return fail("ethdev", fmt::format("cannot start: {}", rte_strerror(-rc)));
    rte_eth_promiscuous_enable(port);  // a switch port sees every frame; some PMDs cannot, which is fine
    return {};
}

}  // namespace

std::string devargs_name(const std::string& devargs)
{
    return devargs.substr(0, devargs.find(','));
}

Result<std::unique_ptr<EthdevPort>> EthdevPort::open(const std::string& devargs, const std::string& port_name,
                                                     uint16_t mtu, rte_mempool* pool)
{
    const std::string name = devargs_name(devargs);
    if (int rc = rte_dev_probe(devargs.c_str()); rc != 0)
        return fail("ethdev", fmt::format("--nic {}: cannot probe the device: {} (check the devargs and that the driver exists)",
                                          devargs, rte_strerror(-rc)));
    uint16_t port = 0;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0)
        return fail("ethdev", fmt::format("--nic {}: probed, but no ethdev named {}", devargs, name));
    OffloadCaps caps;
    if (auto ok = configure(port, mtu, pool, caps, devargs); !ok)
        return fail("ethdev", fmt::format("--nic {}: {}", devargs, ok.error().detail));
    std::unique_ptr<EthdevPort> nic(new EthdevPort(port_name, devargs, port, caps));
    if (auto ok = nic->prepare_queue(0); !ok)
        return fail("ethdev", fmt::format("--nic {}: {}", devargs, ok.error().detail));
    return nic;
}

EthdevPort::EthdevPort(std::string name, std::string devargs, uint16_t port_id, OffloadCaps caps)
    : Port(std::move(name), "ethdev", 1), devargs_(std::move(devargs)), port_id_(port_id), caps_(caps)
{
}

EthdevPort::~EthdevPort()
{
    rte_eth_dev_info info{};
    const bool known = rte_eth_dev_info_get(port_id_, &info) == 0 && info.device != nullptr;
    rte_eth_dev_stop(port_id_);
    rte_eth_dev_close(port_id_);
    // Detached from its bus too, so the same devargs can be added again (vdevs: a new probe).
    if (known && rte_dev_remove(info.device) != 0)
        log(LogLevel::debug, "port {}: cannot detach device {}", name(), devargs_);
}

uint16_t EthdevPort::receive(PmdContext& ctx, uint16_t, rte_mbuf** pkts, uint16_t max)
{
    const uint16_t n = rte_eth_rx_burst(port_id_, 0, pkts, max);
    if (n > 0) {
        PortCounters& c = counters(ctx.slot);
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; ++i)
            bytes += pkts[i]->pkt_len;
        c.rx_packets.add(n);
        c.rx_bytes.add(bytes);
    }
    return n;
}

void EthdevPort::transmit(PmdContext& ctx, uint16_t, rte_mbuf** pkts, uint16_t n)
{
    // Frames asking for a checksum or segmentation the device cannot do: software first.
    for (uint16_t i = 0; i < n; ++i) {
        if ((pkts[i]->ol_flags & kOffloadRequests) != 0) {
            transmit_offloaded(ctx, pkts, n);
            return;
        }
    }
    tx_burst(ctx, pkts, n);
}

void EthdevPort::transmit_offloaded(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    std::array<rte_mbuf*, kMaxSoftwareSegments> out;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if ((m->ol_flags & RTE_MBUF_F_TX_IPV4) && (((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) && caps_.tso4) ||
                                                   ((m->ol_flags & RTE_MBUF_F_TX_UDP_SEG) && caps_.uso4)))
            m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;  // the device recomputes each segment's IPv4 header
        uint16_t made = resolve_offloads(&m, 1, caps_, ctx.pool, counters(ctx.slot), out.data(), uint16_t(out.size()));
        // Fix what the device needs in the headers (pseudo-header sums for its checksum
        // and segmentation) where the driver knows better than we do.
        const uint16_t ready = rte_eth_tx_prepare(port_id_, 0, out.data(), made);
        if (ready < made) {
            counters(ctx.slot).drop(Drop::bad_offload, made - ready);
            rte_pktmbuf_free_bulk(out.data() + ready, made - ready);
            made = ready;
        }
        tx_burst(ctx, out.data(), made);
    }
}

void EthdevPort::tx_burst(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i)
        bytes += pkts[i]->pkt_len;
    const uint16_t sent = rte_eth_tx_burst(port_id_, 0, pkts, n);
    PortCounters& c = counters(ctx.slot);
    for (uint16_t i = sent; i < n; ++i)
        bytes -= pkts[i]->pkt_len;
    c.tx_packets.add(sent);
    c.tx_bytes.add(bytes);
    queue_counters(0).tx_packets.add(sent);
    if (sent < n) {
        c.drop(Drop::tx_full, n - sent);
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
}

std::string EthdevPort::state() const
{
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id_, &link) != 0)
        return "unknown";
    return link.link_status ? "up" : "down";
}

}  // namespace vusw
