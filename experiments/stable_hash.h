#pragma once
// A hash of a name that never changes between runs, platforms or compilers (FNV-1a, 64 bit): it seeds each
// task's own random stream, Generator(seed).fork(stable_hash(name)), so a task's data depends on its name
// and the seed only (internal to experiments/).
#include <cstdint>
#include <string>

namespace linfuse::data {

inline uint64_t stable_hash(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

}  // namespace linfuse::data
