// Training in the tangent space: linearize a network at its initial weights theta0 and train the linear model
//   f_lin(x; theta) = f(x; theta0) + J(x; theta0) (theta - theta0)
// (peft/linearized_model.h; the paper's equation, here in every weight, i.e. linearized full fine-tuning).
// Then compare the real network at theta0 + t delta, delta = the trained change, with its linearization
// f0 + t J delta: they agree to second order for small t (the gap shrinks like t^2) and part ways for large t.
//
// Run: build/examples/linearized_training
#include <cmath>
#include <cstdio>

#include "autodiff/functional.h"     // jvp
#include "autodiff/ops.h"
#include "autodiff/tape.h"           // NoGradGuard
#include "nn/layers.h"
#include "nn/optim.h"                // AdamW
#include "peft/linearized_model.h"   // LinearizedModel

using namespace linfuse;

// A two-layer network x (N, 2) -> (N, 1), float64.
struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  explicit Net(Generator& g) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, 32, true, g, DType::F64));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 1, true, g, DType::F64));
  }
  Tensor forward(const Tensor& x) { return fc2->forward(tanh(fc1->forward(x))); }
};

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

int main() {
  Generator gen(0);
  Net net(gen);
  Tensor x = gen.normal({64, 2}, 0, 1, DType::F64);
  Tensor target = mul(slice(x, 1, 0, 1), slice(x, 1, 1, 2));   // x0 * x1, (64, 1): not fitted at theta0
  peft::LinearizedModel linear(net, {"*"});           // phi = every weight; the module keeps theta0
  auto f_lin = [&] { return linear([&] { return net.forward(x); }); };

  nn::AdamW optimizer(linear.parameters(), 1e-2, /*weight_decay=*/0.0);
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    optimizer.zero_grad();
    Tensor loss = mean(square(sub(f_lin(), target)));
    backward(loss);   // J^T dL/dout, one VJP of the network at theta0: the model is linear in phi
    optimizer.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  std::printf("tangent-space training: loss %.4f -> %.4f (%lld weights)\n", first, last,
              (long long)linear.num_parameters());

  // delta = phi - theta0, and J delta by forward mode through the plain network.
  std::vector<Tensor*> slots = linear.slots();   // the module's own weights (they hold theta0)
  Tensors theta0 = linear.phi0_tensors(), original, delta;
  for (Tensor* slot : slots) original.push_back(*slot);
  for (size_t i = 0; i < slots.size(); ++i) delta.push_back(sub(linear.parameters()[i].detach(), theta0[i]));
  auto f_at = [&](const Tensors& weights) {   // the real network with other weights in its slots
    for (size_t i = 0; i < slots.size(); ++i) *slots[i] = weights[i];
    Tensor out = net.forward(x);
    for (size_t i = 0; i < slots.size(); ++i) *slots[i] = original[i];
    return out;
  };
  NoGradGuard no_grad;
  auto [f0, J_delta] = jvp(f_at, theta0, delta);
  double exactness = max_abs(sub(f_lin(), add(f0, J_delta)));   // f_lin(theta0 + delta) is f0 + J delta
  std::printf("f_lin(theta0 + delta) - (f0 + J delta): %.1e\n", exactness);

  std::printf("   t   |f(theta0 + t delta) - f0 - t J delta|   relative to |t J delta|\n");
  std::vector<double> gaps, relative;
  for (double t : {0.001, 0.01, 0.1, 1.0, 3.0}) {
    Tensors moved;
    for (size_t i = 0; i < slots.size(); ++i) moved.push_back(add(theta0[i], mul(delta[i], t)));
    double gap = max_abs(sub(f_at(moved), add(f0, mul(J_delta, t))));
    gaps.push_back(gap);
    relative.push_back(gap / (t * max_abs(J_delta)));
    std::printf("%6.3f   %.3e                           %.1e\n", t, gap, relative.back());
  }
  double order = std::log10(gaps[1] / gaps[0]);   // 2 when the gap is second order in t
  std::printf("gap(0.01) / gap(0.001) = 10^%.2f (second order: 10^2)\n", order);
  // Trained, exact at every delta, second order near theta0, and far from the network at the trained delta (t = 1).
  bool ok = last < 0.5 * first && exactness < 1e-12 && std::abs(order - 2) < 0.2 && relative[3] > 0.1;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
