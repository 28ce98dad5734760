// The effective-MTU rule (mtu.h): the operator's mtu= when given, else the front-end's
// NET_SET_MTU while it is connected, else 1500; a front-end's MTU above an explicit mtu=
// (or outside what the switch takes) is refused with a message saying what to change.
#include "vusw/mtu.h"

#include <doctest/doctest.h>

using namespace vusw;

namespace {

PortConfig with_mtu(uint16_t mtu)
{
    PortConfig c;
    c.mtu = mtu;
    c.mtu_given = true;
    return c;
}

}  // namespace

TEST_CASE("effective MTU: mtu= when given, else the front-end's, else 1500")
{
    const PortConfig plain;
    CHECK(effective_mtu(plain, std::nullopt) == EffectiveMtu{1500, MtuSource::default_mtu});
    CHECK(effective_mtu(plain, 9000) == EffectiveMtu{9000, MtuSource::frontend});
    CHECK(effective_mtu(plain, 1280) == EffectiveMtu{1280, MtuSource::frontend});
    const PortConfig jumbo = with_mtu(9000);
    CHECK(effective_mtu(jumbo, std::nullopt) == EffectiveMtu{9000, MtuSource::config});
    CHECK(effective_mtu(jumbo, 1500) == EffectiveMtu{1500, MtuSource::frontend});  // lower: the driver was told so
    CHECK(effective_mtu(with_mtu(1500), std::nullopt) == EffectiveMtu{1500, MtuSource::config});
    CHECK(mtu_source_name(MtuSource::default_mtu) == "default");
    CHECK(mtu_source_name(MtuSource::config) == "config");
    CHECK(mtu_source_name(MtuSource::frontend) == "front-end");
}

TEST_CASE("NET_SET_MTU: up to an explicit mtu=, within 68..9000 without one")
{
    const PortConfig plain;
    CHECK(check_frontend_mtu(plain, 9000).has_value());
    CHECK(check_frontend_mtu(plain, 68).has_value());
    CHECK(check_frontend_mtu(plain, 1500).has_value());
    for (uint64_t bad : {uint64_t{0}, uint64_t{67}, uint64_t{9001}, uint64_t{65535}, uint64_t{1} << 40}) {
        CAPTURE(bad);
        const Status s = check_frontend_mtu(plain, bad);
        REQUIRE_FALSE(s.has_value());
        CHECK(std::string(s.error().reason) == "bad_mtu");
        CHECK(s.error().detail.find("68..9000") != std::string::npos);
    }

    const PortConfig small = with_mtu(1500);
    CHECK(check_frontend_mtu(small, 1500).has_value());
    CHECK(check_frontend_mtu(small, 1000).has_value());
    const Status above = check_frontend_mtu(small, 9000);
    REQUIRE_FALSE(above.has_value());
    CHECK(std::string(above.error().reason) == "mtu_above_port_mtu");
    CHECK(above.error().detail == "NET_SET_MTU 9000 refused: above the port's mtu=1500; lower the front-end's MTU "
                                  "(QEMU host_mtu=) to at most 1500, or raise the port's mtu=");
}
