// Names of virtio-net / vhost-user feature bits, for people reading `show ports`.
#include <fmt/format.h>

#include <array>
#include <utility>

#include "control/vhost_user/message.h"

namespace vusw::vhost_user {
namespace {

using Named = std::pair<unsigned, const char*>;

// virtio 1.2 §5.1.3 and §6; vhost-user's own bit 30.
constexpr std::array kFeatures = {
    Named{0, "CSUM"},          Named{1, "GUEST_CSUM"},   Named{2, "CTRL_GUEST_OFFLOADS"}, Named{3, "MTU"},
    Named{5, "MAC"},           Named{7, "GUEST_TSO4"},   Named{8, "GUEST_TSO6"},          Named{9, "GUEST_ECN"},
    Named{10, "GUEST_UFO"},    Named{11, "HOST_TSO4"},   Named{12, "HOST_TSO6"},          Named{13, "HOST_ECN"},
    Named{14, "HOST_UFO"},     Named{15, "MRG_RXBUF"},   Named{16, "STATUS"},             Named{17, "CTRL_VQ"},
    Named{18, "CTRL_RX"},      Named{19, "CTRL_VLAN"},   Named{21, "GUEST_ANNOUNCE"},     Named{22, "MQ"},
    Named{23, "CTRL_MAC_ADDR"}, Named{26, "LOG_ALL"}, Named{28, "RING_INDIRECT_DESC"}, Named{29, "RING_EVENT_IDX"},
    Named{30, "PROTOCOL_FEATURES"}, Named{32, "VERSION_1"}, Named{33, "ACCESS_PLATFORM"}, Named{34, "RING_PACKED"},
    Named{35, "IN_ORDER"},     Named{36, "ORDER_PLATFORM"}, Named{37, "SR_IOV"},          Named{38, "NOTIFICATION_DATA"},
    Named{54, "GUEST_USO4"},   Named{55, "GUEST_USO6"},  Named{56, "HOST_USO"},
};

// vhost-user "Protocol features".
constexpr std::array kProtocolFeatures = {
    Named{0, "MQ"},          Named{1, "LOG_SHMFD"},       Named{2, "RARP"},          Named{3, "REPLY_ACK"},
    Named{4, "NET_MTU"},     Named{5, "BACKEND_REQ"},     Named{6, "CROSS_ENDIAN"},  Named{7, "CRYPTO_SESSION"},
    Named{8, "PAGEFAULT"},   Named{9, "CONFIG"},          Named{10, "BACKEND_SEND_FD"}, Named{11, "HOST_NOTIFIER"},
    Named{12, "INFLIGHT_SHMFD"}, Named{13, "RESET_DEVICE"}, Named{14, "INBAND_NOTIFICATIONS"},
    Named{15, "CONFIGURE_MEM_SLOTS"}, Named{16, "STATUS"},
};

template <std::size_t N>
std::vector<std::string> names(uint64_t bits, const std::array<Named, N>& table)
{
    std::vector<std::string> out;
    for (unsigned bit = 0; bit < 64; ++bit) {
        if (!(bits >> bit & 1))
            continue;
        const char* name = nullptr;
        for (const auto& [b, n] : table)
            if (b == bit)
                name = n;
        out.push_back(name != nullptr ? std::string(name) : fmt::format("bit {}", bit));
    }
    return out;
}

}  // namespace

std::vector<std::string> feature_names(uint64_t features)
{
    return names(features, kFeatures);
}

std::vector<std::string> protocol_feature_names(uint64_t features)
{
    return names(features, kProtocolFeatures);
}

}  // namespace vusw::vhost_user
