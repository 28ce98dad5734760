// Fake guest memory for the vhost-user front-end: memfd-backed regions mapped
// MAP_SHARED in this process, exactly like QEMU's memory-backend-memfd,share=on.
// Each region has a guest physical address of our choosing and, like QEMU, uses
// the real mmap address as its "userspace address" (uva).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vhost_wire.h"

namespace vusw::it {

// Owns one file descriptor; closes it exactly once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  int release();
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A new nonblocking eventfd (kick/call/err notifiers).
UniqueFd make_eventfd();

// One memfd region: file of `size` bytes mapped whole.
class MemRegion {
 public:
  // hugetlb: back the region with 2 MiB pages (size must be a multiple of 2 MiB).
  MemRegion(uint64_t gpa, uint64_t size, bool hugetlb = false);
  ~MemRegion();
  MemRegion(const MemRegion&) = delete;
  MemRegion& operator=(const MemRegion&) = delete;

  uint64_t gpa() const { return gpa_; }
  uint64_t size() const { return size_; }
  uint64_t uva() const { return reinterpret_cast<uint64_t>(host_); }
  int fd() const { return fd_.get(); }
  std::byte* host() const { return host_; }
  // The region as ADD_MEM_REG / SET_MEM_TABLE describe it (mmap_offset 0).
  MemRegionDesc desc() const { return {gpa_, size_, uva(), 0}; }
  bool contains(uint64_t gpa, uint64_t len) const;

 private:
  uint64_t gpa_;
  uint64_t size_;
  UniqueFd fd_;
  std::byte* host_ = nullptr;
};

// The set of regions the fake guest currently has, looked up by GPA.
class GuestMemory {
 public:
  MemRegion& add(uint64_t gpa, uint64_t size);
  // Drops our mapping too; the caller sends REM_MEM_REG/SET_MEM_TABLE first.
  void remove(uint64_t gpa);
  MemRegion* find(uint64_t gpa) const;
  // Host pointer for [gpa, gpa+len) if it lies inside one region, else nullptr.
  std::byte* host(uint64_t gpa, uint64_t len) const;
  uint64_t uva(uint64_t gpa) const;
  // Copies bytes to guest memory piece by piece, so [gpa, gpa+len) may span
  // GPA-adjacent regions. False if any byte is unmapped.
  bool write(uint64_t gpa, std::span<const std::byte> bytes) const;
  template <class T>
  T* at(uint64_t gpa) const {
    return reinterpret_cast<T*>(host(gpa, sizeof(T)));
  }
  const std::vector<std::unique_ptr<MemRegion>>& regions() const { return regions_; }

 private:
  std::vector<std::unique_ptr<MemRegion>> regions_;
};

}  // namespace vusw::it
