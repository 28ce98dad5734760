#include "fake_memory.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace vusw::it {

namespace {
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}
}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd make_eventfd() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw_errno("eventfd");
  return UniqueFd(fd);
}

MemRegion::MemRegion(uint64_t gpa, uint64_t size, bool hugetlb) : gpa_(gpa), size_(size) {
  fd_.reset(::memfd_create("vuswitch-it-guest", MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0u)));
  if (!fd_) throw_errno("memfd_create");
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) throw_errno("ftruncate");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) throw_errno("mmap guest region");
  host_ = static_cast<std::byte*>(p);
}

MemRegion::~MemRegion() { ::munmap(host_, size_); }

bool MemRegion::contains(uint64_t gpa, uint64_t len) const {
  // Written so that gpa + len cannot overflow.
  return gpa >= gpa_ && len <= size_ && gpa - gpa_ <= size_ - len;
}

MemRegion& GuestMemory::add(uint64_t gpa, uint64_t size) {
  regions_.push_back(std::make_unique<MemRegion>(gpa, size));
  return *regions_.back();
}

void GuestMemory::remove(uint64_t gpa) {
  std::erase_if(regions_, [gpa](const auto& r) { return r->gpa() == gpa; });
}

MemRegion* GuestMemory::find(uint64_t gpa) const {
  for (const auto& r : regions_)
    if (r->contains(gpa, 1)) return r.get();
  return nullptr;
}

std::byte* GuestMemory::host(uint64_t gpa, uint64_t len) const {
  for (const auto& r : regions_)
    if (r->contains(gpa, len)) return r->host() + (gpa - r->gpa());
  return nullptr;
}

bool GuestMemory::write(uint64_t gpa, std::span<const std::byte> bytes) const {
  while (!bytes.empty()) {
    MemRegion* r = find(gpa);
    if (r == nullptr) return false;
    size_t n = std::min<uint64_t>(bytes.size(), r->gpa() + r->size() - gpa);
    std::memcpy(r->host() + (gpa - r->gpa()), bytes.data(), n);
    bytes = bytes.subspan(n);
    gpa += n;
  }
  return true;
}

uint64_t GuestMemory::uva(uint64_t gpa) const {
  MemRegion* r = find(gpa);
  if (r == nullptr) throw std::out_of_range("uva: gpa not in guest memory");
  return r->uva() + (gpa - r->gpa());
}

}  // namespace vusw::it
