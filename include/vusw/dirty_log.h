// The front-end's dirty-page log (vhost-user "Migration", "Dirty page logging").
//
// While a guest migrates, QEMU copies its memory to the destination in rounds and needs
// to know every page written behind its back. The back-end writes guest memory (received
// frames, used rings), so it marks each 4 KiB guest page it writes in a bitmap QEMU
// shares with it (SET_LOG_BASE): bit (gpa / 4096) % 8 of byte gpa / 4096 / 8. QEMU
// reads and clears the bitmap while PMD cores set bits in it, so every bit is set with
// an atomic OR, and only after the write it stands for (a page marked before it changed
// might be sent, cleared and then changed unseen).
//
// A DirtyLog is immutable once mapped: the control thread publishes it to PMD cores by
// RCU (like MemTable) and a new log base replaces it safely under traffic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "vusw/result.h"
#include "vusw/unique_fd.h"

namespace vusw {

class DirtyLog {
public:
    static constexpr uint64_t kPageShift = 12;  // the log's page size is fixed: 4 KiB

    // Maps `size` bytes at `offset` of `fd` (SET_LOG_BASE's mmap_size and mmap_offset).
    static Result<std::shared_ptr<const DirtyLog>> map(UniqueFd fd, uint64_t size, uint64_t offset);
    // A log over memory the caller owns and keeps alive (tests).
    static std::shared_ptr<const DirtyLog> over(std::byte* bitmap, uint64_t size);
    // A private log of its own anonymous memory, nobody reads (benchmarks of logging).
    static Result<std::shared_ptr<const DirtyLog>> anonymous(uint64_t size);
    ~DirtyLog();
    DirtyLog(const DirtyLog&) = delete;
    DirtyLog& operator=(const DirtyLog&) = delete;

    // Marks every page of [gpa, gpa+len) (len > 0). Returns the pages whose bit this call
    // set (0 if QEMU had not cleared them yet). Pages beyond the bitmap are not marked:
    // `missed` counts them (a front-end whose log is too small for its guest, or a used
    // ring address outside it: CVE-2020-10722 is writing there anyway).
    uint32_t mark(uint64_t gpa, uint64_t len, uint32_t& missed) const noexcept;

    uint64_t size() const { return size_; }
    // Guest-physical bytes the bitmap covers.
    uint64_t covers() const { return size_ * 8 << kPageShift; }

private:
    DirtyLog(void* mapping, std::size_t mapping_len, std::byte* bitmap, uint64_t size);

    void* mapping_;  // nullptr for over(): not ours to unmap
    std::size_t mapping_len_;
    std::byte* bitmap_;
    uint64_t size_;
};

}  // namespace vusw
