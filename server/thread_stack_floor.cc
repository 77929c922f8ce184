// Thread stacks with room for this process's static TLS (headroom-server
// only; a workaround kept out of the wiring in main.cc).
//
// glibc carves each thread's static TLS out of the stack the thread was
// created with. This process's static TLS is large (OpenBLAS alone takes
// 60 KiB per thread), and some libraries create threads with small fixed
// stacks: civetweb, under prometheus-cpp's /metrics exposer, asks for
// 100 KiB, which leaves about 30 KiB; its printf (on glibc's slower
// positional path, because libquadmath, loaded with OpenBLAS, registers
// printf hooks) then overflowed the stack and the server died on its first
// /metrics scrape. This definition interposes pthread_attr_setstacksize for
// the whole process (the executable's symbol wins over libc's) and raises
// every request to at least kMinThreadStackBytes.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cstddef>

namespace {

constexpr size_t kMinThreadStackBytes = size_t{1} << 20;

using SetStackSizeFn = int (*)(pthread_attr_t*, size_t);

SetStackSizeFn RealSetStackSize() {
  static const SetStackSizeFn real =
      reinterpret_cast<SetStackSizeFn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return real;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stack_bytes) {
  return RealSetStackSize()(attr, std::max(stack_bytes, kMinThreadStackBytes));
}
