// ExactAllocator: an Asio handler allocator that takes each operation's memory from the heap at
// its exact size. For waits that stay pending for a connection's whole idle life: Asio's default
// (std::allocator, which Asio maps to its per-thread recycling cache) would hand such a wait a
// recycled block of whatever size the thread freed last — ~560 bytes left by the HTTP upgrade
// for a ~150-byte wait — and keep it for as long as the connection is idle.
#pragma once

#include <cstddef>
#include <new>

namespace sg::net {

template <typename T>
struct ExactAllocator {
  using value_type = T;

  ExactAllocator() = default;
  template <typename U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }

  template <typename U>
  bool operator==(const ExactAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace sg::net
