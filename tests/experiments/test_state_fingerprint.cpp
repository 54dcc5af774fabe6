#include <catch2/catch.hpp>
#include <cstring>

#include "experiments/state_fingerprint.h"
#include "tensor/kernels.h"

using namespace linfuse;
using experiments::state_fingerprint;

namespace {
StateDict two_entries(float last) {
  StateDict state;
  state.insert("encoder.weight", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}));
  state.insert("decoder.bias", Tensor::from_vector(std::vector<float>{0.5f, last}, {2}));
  return state;
}
}  // namespace

TEST_CASE("a state's fingerprint follows its contents, not its tensors' identity", "[state_fingerprint]") {
  const StateDict state = two_entries(7);
  // the same numbers in other tensors
  CHECK(state_fingerprint(state) == state_fingerprint(two_entries(7)));
  // one element's last bit
  float nudged = 7;
  uint32_t bits;
  std::memcpy(&bits, &nudged, 4);
  bits ^= 1u;
  std::memcpy(&nudged, &bits, 4);
  CHECK(state_fingerprint(state) != state_fingerprint(two_entries(nudged)));
  // a name, a shape holding the same bytes, a dtype, the salt
  StateDict renamed;
  renamed.insert("encoder.weights", state.at("encoder.weight"));
  renamed.insert("decoder.bias", state.at("decoder.bias"));
  CHECK(state_fingerprint(state) != state_fingerprint(renamed));
  StateDict reshaped;
  reshaped.insert("encoder.weight", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2}));
  reshaped.insert("decoder.bias", state.at("decoder.bias"));
  CHECK(state_fingerprint(state) != state_fingerprint(reshaped));
  StateDict wider;
  wider.insert("encoder.weight", Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}));
  wider.insert("decoder.bias", state.at("decoder.bias"));
  CHECK(state_fingerprint(state) != state_fingerprint(wider));
  CHECK(state_fingerprint(state, 1) != state_fingerprint(state, 0));
  // a strided view is read in its own element order: the transpose of this (3, 2) tensor is the (2, 3) one above
  StateDict transposed;
  transposed.insert("encoder.weight", kernels::permute(Tensor::from_vector(std::vector<float>{1, 4, 2, 5, 3, 6}, {3, 2}), {1, 0}));
  transposed.insert("decoder.bias", state.at("decoder.bias"));
  CHECK(state_fingerprint(state) == state_fingerprint(transposed));
}
