// splitmix64: a tiny, fast, deterministic 64-bit generator (Steele et al.),
// the same on every platform. For weight initialisation, sampling draws and
// test mutations; not for anything that must be unpredictable.
#ifndef HEADROOM_SERVER_COMMON_SPLITMIX64_H_
#define HEADROOM_SERVER_COMMON_SPLITMIX64_H_

#include <cstddef>
#include <cstdint>

namespace hr {

struct SplitMix64 {
  uint64_t state = 0;

  uint64_t Next() { return Mix(state += 0x9E3779B97F4A7C15ull); }
  // The generator's output function: a strong 64-bit bit mixer (also used
  // for hashing).
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // In [0, n); 0 when n == 0.
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

}  // namespace hr

#endif  // HEADROOM_SERVER_COMMON_SPLITMIX64_H_
