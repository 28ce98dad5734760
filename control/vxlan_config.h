// --vxlan NAME,local=IP,remote=IP[,remote=IP...],vni=N[,dstport=PORT],underlay=NIC: a VXLAN
// tunnel port (ports/vxlan_port.h) over a --nic that then is no switch port of its own.
// vni=N:VID, repeated instead of vni=N, maps several VNIs to VLANs (vxlan.h): the tunnel
// then is a trunk of those VLANs and takes no VLAN options of its own.
#pragma once

#include <string>

#include "control/config.h"
#include "ports/vxlan_port.h"
#include "vusw/result.h"

namespace vusw {

// The settings in a --vxlan value's target (PortSpec::target, without the |options);
// errors name the field and what it takes.
Result<VxlanSettings> parse_vxlan(const std::string& target);
// Every tunnel parses, names an existing --nic as its underlay, one tunnel per underlay,
// its mtu= (if any) fits in the underlay's MTU less the 50 bytes of VXLAN headers, and a
// tunnel with a VNI map has no VLAN options.
Status check_vxlans(const Config& c);
// The --nic spec named `name` that a --vxlan uses as its underlay, if any.
const PortSpec* underlay_of(const Config& c, const std::string& name);
// Whether the --nic `nic` (its port name) is some tunnel's underlay.
bool is_underlay(const Config& c, const std::string& nic);
// A tunnel's port settings: its MTU is the underlay's less 50 unless mtu= says less; with a
// VNI map (`s`) it is a trunk of the mapped VLANs (native VLAN 0, which no VNI carries).
PortConfig tunnel_port_config(const PortSpec& tunnel, const VxlanSettings& s, const PortSpec& underlay);

}  // namespace vusw
