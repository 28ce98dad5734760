// Dataplane tests that need DPDK's EAL (mbufs and mempools): EAL starts once, without
// hugepages, PCI or shared files (net_null0 only so that the bus has a device), so the suite runs anywhere and beside a running switch.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <rte_eal.h>

#include <array>
#include <cstdio>

int main(int argc, char** argv)
{
    std::array<char*, 6> eal = {argv[0], const_cast<char*>("--no-huge"), const_cast<char*>("--no-pci"),
                                const_cast<char*>("--no-shconf"), const_cast<char*>("--log-level=lib.eal:error"),
                                const_cast<char*>("--vdev=net_null0")};
    if (rte_eal_init(int(eal.size()), eal.data()) < 0) {
        std::fprintf(stderr, "dataplane_tests: cannot start DPDK's EAL\n");
        return 1;
    }
    doctest::Context context(argc, argv);
    const int rc = context.run();
    rte_eal_cleanup();
    return rc;
}
