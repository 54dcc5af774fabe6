#pragma once
// A 128-bit fingerprint of a state's contents: every entry's name, dtype, shape and the bits of every element.
// Two states with the same fingerprint hold the same numbers, so whatever was computed from the model under one
// holds for the other, bit for bit (the text suite reuses a model's calibration prior this way). Two independent
// 64-bit multiply-rotate streams over the bytes: a collision among the few thousand states a study scores has a
// probability of about 2^-100. Same contents, same fingerprint, on every machine (internal to experiments/).
#include <compare>
#include <cstdint>

#include "tensor/state_dict.h"

namespace linfuse::experiments {

struct StateFingerprint {
  uint64_t first = 0, second = 0;
  auto operator<=>(const StateFingerprint&) const = default;
};

// `salt` tells apart states of different roles that may hold the same numbers (a weight-space delta and a
// trainable state).
StateFingerprint state_fingerprint(const StateDict& state, uint64_t salt = 0);

}  // namespace linfuse::experiments
