#pragma once
// Gradient checks in float64: for a function built from primitives,
//   VJP      reverse mode against central differences of <u, f(x)> with a random Gaussian cotangent u
//            (never sum(f): softmax would pass with a zero gradient), and the recorded (create_graph)
//            VJP against the plain one;
//   JVP      forward mode (recorded, and without recording, where rules may run fused kernels) and linearize,
//            against the directional difference (f(x+hv) - f(x-hv)) / 2h;
//   adjoint  <u, J v> = <J^T u, v> between the two modes, normalised by |u||Jv| + |J^T u||v|.
// The registry holds cases for every registered primitive; a test checks none is missing.
#include <functional>
#include <string>
#include <vector>

#include "autodiff/functional.h"
#include "tensor/random.h"

namespace linfuse {

struct GradcheckCase {
  std::string name;                                  // "softmax[masked rows]"
  std::function<Tensors(Generator&)> sample;         // float64 inputs are checked; int64 inputs are held fixed
  Function fn;
  double step = 1e-6;                                // finite-difference step
  double tolerance = 1e-6;                           // for the VJP and JVP errors
  bool dyadic = false;   // round u, v to multiples of 1/64 (for float32 round trips, which are exact on them)
};

struct GradcheckResult {
  std::string name;
  double vjp_error = 0, jvp_error = 0, adjoint_error = 0;
  bool passed = false;
  std::vector<std::string> primitives;   // the primitives the case exercised
  std::string message;                   // why it failed, if it did
};

constexpr double kAdjointTolerance = 1e-10;

// The built-in cases plus those registered by other libraries (peft registers its linearized_call case
// next to the primitive, so linking the primitive links its check).
std::vector<GradcheckCase> gradcheck_cases();
bool register_gradcheck_case(GradcheckCase c);
GradcheckResult run_gradcheck(const GradcheckCase& c, uint64_t seed = 0);

}  // namespace linfuse
