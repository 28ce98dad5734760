// The dirty-page bitmap shared with the front-end.
#include "vusw/dirty_log.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>

#include <fmt/format.h>

namespace vusw {

Result<std::shared_ptr<const DirtyLog>> DirtyLog::map(UniqueFd fd, uint64_t size, uint64_t offset)
{
    if (!fd)
        return fail("bad_log", "SET_LOG_BASE without an fd (LOG_SHMFD)");
    if (size == 0 || offset > SIZE_MAX - size)
        return fail("bad_log", fmt::format("log of {:#x} bytes at offset {:#x}: empty or wraps", size, offset));
    struct stat st {};
    if (fstat(fd.get(), &st) != 0)
        return fail("bad_log", "cannot fstat the log fd");
    if (S_ISREG(st.st_mode) && offset + size > uint64_t(st.st_size))
        return fail("bad_log", fmt::format("log [{:#x}, +{:#x}) ends past the fd's size {:#x}", offset, size,
                                           uint64_t(st.st_size)));
    // Mapped from the file's start, as the offset need not be page aligned (QEMU's is 0).
    const std::size_t length = std::size_t(offset + size);
    void* mapping = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (mapping == MAP_FAILED)
        return fail("mmap_failed", fmt::format("mmap of the {:#x}-byte log failed", length));
    // The fd is closed on return: the mapping keeps the memory.
    return std::shared_ptr<const DirtyLog>(
        new DirtyLog(mapping, length, static_cast<std::byte*>(mapping) + offset, size));
}

std::shared_ptr<const DirtyLog> DirtyLog::over(std::byte* bitmap, uint64_t size)
{
    return std::shared_ptr<const DirtyLog>(new DirtyLog(nullptr, 0, bitmap, size));
}

Result<std::shared_ptr<const DirtyLog>> DirtyLog::anonymous(uint64_t size)
{
    void* mapping = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED)
        return fail("mmap_failed", fmt::format("mmap of a {:#x}-byte private log failed", size));
    return std::shared_ptr<const DirtyLog>(new DirtyLog(mapping, size, static_cast<std::byte*>(mapping), size));
}

DirtyLog::DirtyLog(void* mapping, std::size_t mapping_len, std::byte* bitmap, uint64_t size)
    : mapping_(mapping), mapping_len_(mapping_len), bitmap_(bitmap), size_(size)
{
}

DirtyLog::~DirtyLog()
{
    if (mapping_ != nullptr)
        munmap(mapping_, mapping_len_);
}

uint32_t DirtyLog::mark(uint64_t gpa, uint64_t len, uint32_t& missed) const noexcept
{
    const uint64_t first = gpa >> kPageShift;
    const uint64_t last = (gpa + (len - 1)) >> kPageShift;  // a wrap past 2^64 ends the range at the top
    const uint64_t end = gpa + (len - 1) < gpa ? (UINT64_MAX >> kPageShift) : last;
    uint32_t set = 0;
    for (uint64_t page = first; page <= end; ++page) {
        if (page / 8 >= size_) {
            missed += uint32_t(end - page + 1);
            break;
        }
        const auto bit = uint8_t(1u << (page % 8));
        // Always the locked OR, never "load, and skip if set": QEMU may clear the bit
        // between such a load and the page's new bytes becoming visible (x86 lets a
        // store pass a later load), and the page would not be sent again. The OR orders
        // every earlier store of this core before the bit.
        std::atomic_ref<uint8_t> byte(*reinterpret_cast<uint8_t*>(bitmap_ + page / 8));
        if ((byte.fetch_or(bit, std::memory_order_release) & bit) == 0)
            ++set;
    }
    return set;
}

}  // namespace vusw
