// libFuzzer target: memory-table update sequences (SET_MEM_TABLE / ADD_MEM_REG /
// REM_MEM_REG as the control thread applies them).
//
// Each 26-byte record is one operation on the current table: map a region of one of a few
// small memfds and add it, remove a region, translate a range, or keep a snapshot. A
// model (the list of regions the table should hold) decides what must succeed; every
// translation is checked against the model, and old snapshots must not change.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "vusw/guest_memory.h"

using namespace vusw;
using vusw::fuzz::expect;
using vusw::fuzz::violated;
using vusw::fuzz::region;

namespace {

constexpr unsigned kFiles = 3;
constexpr uint64_t kFileSize = 0x8000;
constexpr std::size_t kRecord = 26;
constexpr std::size_t kMaxOps = 96;

int memfd(unsigned i)
{
    static int fds[kFiles] = {-1, -1, -1};
    if (fds[i] < 0) {
        fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
        if (fds[i] < 0 || ftruncate(fds[i], off_t(kFileSize)) != 0)
            violated("memfd");
    }
    return fds[i];
}

// Small addresses most of the time (so regions meet and overlap), sometimes the raw
// 64-bit value (wrap-around, the top of the address space).
uint64_t address(uint16_t small, uint64_t raw, bool use_raw)
{
    return use_raw ? raw : uint64_t(small) * 0x1000;
}

bool overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size)
{
    return a <= b + (b_size - 1) && b <= a + (a_size - 1);
}

struct Model {
    std::vector<RegionDesc> regions;

    const RegionDesc* holding(uint64_t gpa, uint64_t len) const
    {
        if (len == 0 || gpa + (len - 1) < gpa)
            return nullptr;
        for (const RegionDesc& r : regions)
            if (gpa >= r.gpa && gpa + (len - 1) <= r.gpa + (r.size - 1))
                return &r;
        return nullptr;
    }
};

struct Snapshot {
    std::unique_ptr<MemTable> table;
    Model model;
};

// Translation through `t` agrees with `m` (same region, right offset, or nothing).
void agree(const MemTable& t, const Model& m, uint64_t gpa, uint64_t len)
{
    std::byte* p = t.translate(GuestPhysAddr{gpa}, len);
    const RegionDesc* r = m.holding(gpa, len);
    expect((p != nullptr) == (r != nullptr), "translate disagrees with the model");
    if (p != nullptr) {
        // Find the owner by its description and check the offset.
        for (const auto& owner : t.regions())
            if (owner->desc().gpa == r->gpa && owner->desc().size == r->size)
                expect(p == owner->host() + (gpa - r->gpa), "translate: wrong offset");
        p[0] = std::byte{0x5a};
        p[len - 1] = std::byte{0xa5};
        // The same bytes through the front-end address.
        std::byte* u = t.translate_uva(FrontendAddr{r->uva + (gpa - r->gpa)}, len);
        expect(u == p, "translate_uva disagrees with translate");
    }
    auto prefix = t.translate_prefix(GuestPhysAddr{gpa}, len);
    const RegionDesc* first = m.holding(gpa, 1);
    expect(prefix.empty() == (first == nullptr || len == 0), "translate_prefix emptiness");
    if (!prefix.empty()) {
        expect(prefix.size() <= len, "translate_prefix longer than asked");
        expect(prefix.size() <= first->gpa + (first->size - 1) - gpa + 1, "translate_prefix past the region");
        prefix.back() = std::byte{1};
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    auto table = std::make_unique<MemTable>();
    Model model;
    std::optional<Snapshot> kept;

    for (std::size_t op = 0; op < kMaxOps && size >= kRecord; ++op, data += kRecord, size -= kRecord) {
        const uint8_t kind = data[0] % 4;
        const uint8_t flags = data[1];
        uint16_t gpa_small, uva_small, size_small, off_small;
        uint64_t raw;
        std::memcpy(&gpa_small, data + 2, 2);
        std::memcpy(&uva_small, data + 4, 2);
        std::memcpy(&size_small, data + 6, 2);
        std::memcpy(&off_small, data + 8, 2);
        std::memcpy(&raw, data + 10, 8);
        uint64_t len_raw;
        std::memcpy(&len_raw, data + 18, 8);

        const RegionDesc d{
            address(gpa_small, raw, flags & 1),
            (flags & 8) ? raw : uint64_t(size_small) % 0x9000,
            address(uva_small, ~raw, flags & 2),
            (flags & 16) ? len_raw : uint64_t(off_small) % 0x9000,
        };
        switch (kind) {
        case 0: {  // ADD_MEM_REG
            const int fd = dup(memfd(flags >> 6 < kFiles ? flags >> 6 : 0));
            auto region = MappedRegion::map(UniqueFd(fd), d);
            const bool valid = d.size != 0 && d.gpa + (d.size - 1) >= d.gpa && d.uva + (d.size - 1) >= d.uva &&
                               d.mmap_offset + (d.size - 1) >= d.mmap_offset && d.mmap_offset + (d.size - 1) < kFileSize;
            expect(region.has_value() == valid, "map() accepted/rejected wrongly");
            if (!region)
                break;
            bool clash = model.regions.size() >= kMaxMemSlots;
            for (const RegionDesc& r : model.regions)
                clash = clash || overlap(d.gpa, d.size, r.gpa, r.size) || overlap(d.uva, d.size, r.uva, r.size);
            auto next = table->with_region(*region);
            expect(next.has_value() == !clash, "with_region accepted/rejected wrongly");
            if (next) {
                table = std::move(*next);
                model.regions.push_back(d);
            }
            break;
        }
        case 1: {  // REM_MEM_REG: usually one that exists, with fuzzed damage
            RegionDesc target = d;
            if (!model.regions.empty() && !(flags & 32)) {
                target = model.regions[gpa_small % model.regions.size()];
                if (flags & 1)
                    target.size += (flags & 2) ? 1 : -1;
                target.mmap_offset = raw;  // ignored
            }
            auto it = std::find_if(model.regions.begin(), model.regions.end(), [&](const RegionDesc& r) {
                return r.gpa == target.gpa && r.uva == target.uva && r.size == target.size;
            });
            auto next = table->without_region(target);
            expect(next.has_value() == (it != model.regions.end()), "without_region accepted/rejected wrongly");
            if (next) {
                expect((*next)->region_count() + 1 == table->region_count(), "removed more than one region");
                table = std::move(*next);
                model.regions.erase(it);
            }
            break;
        }
        case 2: {  // translate
            uint64_t gpa = d.gpa;
            if (!model.regions.empty() && !(flags & 32))
                gpa = model.regions[uva_small % model.regions.size()].gpa + (raw % 0x9000);
            const uint64_t len = (flags & 4) ? len_raw : size_small % 0x9000;
            agree(*table, model, gpa, len);
            if (kept)
                agree(*kept->table, kept->model, gpa, len);
            break;
        }
        case 3: {  // a PMD core keeps using this snapshot
            auto copy = MemTable::from_regions(table->regions());
            expect(copy.has_value(), "from_regions of a valid table failed");
            kept = Snapshot{std::move(*copy), model};
            break;
        }
        }
        expect(table->region_count() == model.regions.size(), "region count differs from the model");
    }
    return 0;
}
