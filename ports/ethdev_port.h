// A DPDK ethdev port (a NIC, or a virtual one: net_tap, net_af_packet, net_null, ...).
#pragma once

#include <memory>
#include <string>

#include "vusw/offload.h"
#include "vusw/port.h"
#include "vusw/result.h"

namespace vusw {

class EthdevPort final : public Port {
public:
    // Probes `devargs` (any DPDK device string) and starts it with one RX and one TX queue,
    // with the checksum and TSO offloads the device has (RX checksum validation included)
    // and MTU `mtu` (RX scatter when a frame of it does not fit one mbuf of `pool`; an
    // error saying what to do when the device cannot take it); the switch calls the port
    // `name` (the devargs name unless named otherwise).
    static Result<std::unique_ptr<EthdevPort>> open(const std::string& devargs, const std::string& name, uint16_t mtu,
                                                    rte_mempool* pool);
    ~EthdevPort() override;

    uint16_t receive(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t max) override;
    void transmit(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n) override;
    std::string state() const override;
    uint16_t port_id() const { return port_id_; }
    // What the device's TX takes as it is; the rest is done in software (offload.h).
    const OffloadCaps& offloads() const { return caps_; }

private:
    EthdevPort(std::string name, std::string devargs, uint16_t port_id, OffloadCaps caps);
    // Burst with frames asking for checksums or segmentation: resolved one at a time.
    void transmit_offloaded(PmdContext& ctx, rte_mbuf** pkts, uint16_t n);
    // Hands frames to the device; counts what it took and drops the rest (tx_full).
    void tx_burst(PmdContext& ctx, rte_mbuf** pkts, uint16_t n);

    std::string devargs_;
    uint16_t port_id_;
    OffloadCaps caps_;
};

// The port name a devargs string gives ("net_tap0,iface=x" -> "net_tap0").
std::string devargs_name(const std::string& devargs);

}  // namespace vusw
