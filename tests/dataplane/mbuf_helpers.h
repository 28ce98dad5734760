// Helpers of the dataplane tests: each test file's own mbuf pool (what a test leaks shows
// in its pool alone), and frames into and out of mbufs.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

namespace vusw::test {

using Bytes = std::vector<uint8_t>;

// A pool of `n` mbufs of the default size; call it once (keep it in a static).
inline rte_mempool* make_pool(const char* name, unsigned n)
{
    rte_mempool* p = rte_pktmbuf_pool_create(name, n, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    REQUIRE(p != nullptr);
    return p;
}

// `b` in one mbuf of `pool`.
inline rte_mbuf* mbuf_of(rte_mempool* pool, const Bytes& b)
{
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    REQUIRE(m != nullptr);
    std::memcpy(rte_pktmbuf_append(m, uint16_t(b.size())), b.data(), b.size());
    return m;
}

// The bytes of a (chained) mbuf; its segments must add up to its pkt_len.
inline Bytes bytes_of(const rte_mbuf* m)
{
    Bytes out;
    for (const rte_mbuf* s = m; s != nullptr; s = s->next)
        out.insert(out.end(), rte_pktmbuf_mtod(s, const uint8_t*), rte_pktmbuf_mtod(s, const uint8_t*) + s->data_len);
    CHECK(out.size() == m->pkt_len);
    return out;
}

}  // namespace vusw::test
