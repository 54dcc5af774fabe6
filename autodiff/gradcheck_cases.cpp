// The gradient-check registry: one or more cases per primitive, including broadcasting, negative axes and
// the boundary inputs of DESIGN.md (fully masked softmax rows, logits of +-80, rows of tiny variance).
#include <cmath>
#include <limits>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"

namespace linfuse {
namespace {

constexpr DType F64 = DType::F64;
const double kInf = std::numeric_limits<double>::infinity();

Tensor normal(Generator& g, const Shape& s, double scale = 1.0) { return g.normal(s, 0.0, scale, F64); }
Tensor positive(Generator& g, const Shape& s) { return g.uniform(s, 0.5, 2.0, F64); }
// |x| in [0.2, 2] with a random sign: keeps kinks (relu, abs) out of the finite-difference stencil.
Tensor away_from_zero(Generator& g, const Shape& s) {
  Tensor m = g.uniform(s, 0.2, 2.0, F64);
  Tensor sgn = g.bernoulli(s, 0.5, F64);
  std::vector<double> a = m.to_vector<double>(), b = sgn.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) a[i] *= b[i] > 0 ? 1 : -1;
  return Tensor::from_vector(a, s);
}
// Logits near +-80 (the softmax/logsumexp overflow boundary in float32).
Tensor extreme_logits(Generator& g, const Shape& s) {
  Tensor t = normal(g, s);
  std::vector<double> v = t.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) v[i] += (i % 3 == 0) ? 80.0 : (i % 3 == 1 ? -80.0 : 0.0);
  return Tensor::from_vector(v, s);
}
// Rows equal to a constant plus noise of 1e-4: variance 1e-8, far below eps.
Tensor tiny_variance_rows(Generator& g, const Shape& s) {
  std::vector<double> v = normal(g, s, 1e-4).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) v[i] += 0.7;
  return Tensor::from_vector(v, s);
}
// Scores (4, 5) with some entries masked to -inf and row 2 masked entirely.
Tensor masked_scores(Generator& g) {
  std::vector<double> v = normal(g, {4, 5}).to_vector<double>();
  for (int j = 0; j < 5; ++j) v[2 * 5 + j] = -kInf;
  v[0 * 5 + 1] = -kInf;
  v[1 * 5 + 4] = -kInf;
  v[3 * 5 + 0] = -kInf;
  return Tensor::from_vector(v, {4, 5});
}
Tensor ids(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }

using Sampler = std::function<Tensors(Generator&)>;
GradcheckCase unary(const std::string& name, Tensor (*op)(const Tensor&), Sampler sample) {
  return {name, sample, [op](const Tensors& x) { return op(x[0]); }};
}
Sampler one(Shape s) {
  return [s](Generator& g) { return Tensors{normal(g, s)}; };
}

std::vector<GradcheckCase> build_cases() {
  std::vector<GradcheckCase> c;
  Shape s{3, 4};
  // ---- unary ----
  c.push_back(unary("neg", neg, one(s)));
  c.push_back(unary("exp", exp, one(s)));
  c.push_back(unary("log", log, [s](Generator& g) { return Tensors{positive(g, s)}; }));
  c.push_back(unary("sqrt", sqrt, [s](Generator& g) { return Tensors{positive(g, s)}; }));
  c.push_back(unary("rsqrt", rsqrt, [s](Generator& g) { return Tensors{positive(g, s)}; }));
  c.push_back(unary("tanh", tanh, one(s)));
  c.push_back(unary("sigmoid", sigmoid, one(s)));
  c.push_back(unary("sigmoid[logits +-80]", sigmoid, [s](Generator& g) { return Tensors{extreme_logits(g, s)}; }));
  c.push_back(unary("relu", relu, [s](Generator& g) { return Tensors{away_from_zero(g, s)}; }));
  c.push_back(unary("abs", abs, [s](Generator& g) { return Tensors{away_from_zero(g, s)}; }));
  c.push_back(unary("erf", erf, one(s)));
  c.push_back(unary("gelu_tanh", gelu_tanh, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back(unary("gelu_erf", gelu_erf, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back(unary("quick_gelu", quick_gelu, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back(unary("gelu_tanh_grad", gelu_tanh_grad, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back(unary("gelu_erf_grad", gelu_erf_grad, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back(unary("quick_gelu_grad", quick_gelu_grad, [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; }));
  c.push_back({"pow_scalar[p=2.5]", [s](Generator& g) { return Tensors{positive(g, s)}; },
               [](const Tensors& x) { return pow(x[0], 2.5); }});
  c.push_back({"pow_scalar[p=2]", one(s), [](const Tensors& x) { return square(x[0]); }});
  c.push_back({"clamp", [s](Generator& g) { return Tensors{normal(g, s, 2.0)}; },
               [](const Tensors& x) { return clamp(x[0], -1.0, 1.0); }});
  c.push_back({"add_scalar", one(s), [](const Tensors& x) { return add(x[0], 0.75); }});
  c.push_back({"mul_scalar", one(s), [](const Tensors& x) { return mul(x[0], -1.25); }});

  // ---- binary, with broadcasting (3,1,4) op (2,4) ----
  auto pair_broadcast = [](Generator& g) { return Tensors{normal(g, {3, 1, 4}), normal(g, {2, 4})}; };
  c.push_back({"add[broadcast]", pair_broadcast, [](const Tensors& x) { return add(x[0], x[1]); }});
  c.push_back({"sub[broadcast]", pair_broadcast, [](const Tensors& x) { return sub(x[0], x[1]); }});
  c.push_back({"mul[broadcast]", pair_broadcast, [](const Tensors& x) { return mul(x[0], x[1]); }});
  c.push_back({"div[broadcast]", [](Generator& g) { return Tensors{normal(g, {3, 1, 4}), away_from_zero(g, {2, 4})}; },
               [](const Tensors& x) { return div(x[0], x[1]); }});
  c.push_back({"pow", [s](Generator& g) { return Tensors{positive(g, s), normal(g, s)}; },
               [](const Tensors& x) { return pow(x[0], x[1]); }});
  c.push_back({"maximum[broadcast]", [](Generator& g) { return Tensors{normal(g, {3, 4}), normal(g, {1, 4})}; },
               [](const Tensors& x) { return maximum(x[0], x[1]); }});
  c.push_back({"where[mask, broadcast]", [](Generator& g) { return Tensors{normal(g, {3, 4}), normal(g, {4})}; },
               [](const Tensors& x) {
                 Tensor mask = Tensor::from_list({1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0}, {3, 4}, F64);
                 return where(mask, x[0], x[1]);
               }});

  // ---- reductions ----
  Shape r{2, 3, 4};
  c.push_back({"sum[axis -1, keepdims]", one(r), [](const Tensors& x) { return sum(x[0], {-1}, true); }});
  c.push_back({"sum[all]", one(r), [](const Tensors& x) { return sum(x[0]); }});
  c.push_back({"sum[leading axes]", one(r), [](const Tensors& x) { return sum(x[0], {0, 1}); }});
  c.push_back({"mean[axes 0,2]", one(r), [](const Tensors& x) { return mean(x[0], {0, -1}); }});
  c.push_back({"max[axis -2]", one(r), [](const Tensors& x) { return max(x[0], {-2}); }});
  c.push_back({"max[all, keepdims]", one(r), [](const Tensors& x) { return max(x[0], {}, true); }});
  c.push_back({"logsumexp[axes 0,2]", one(r), [](const Tensors& x) { return logsumexp(x[0], {0, 2}); }});
  c.push_back({"logsumexp[logits +-80]", [](Generator& g) { return Tensors{extreme_logits(g, {3, 5})}; },
               [](const Tensors& x) { return logsumexp(x[0], {-1}); }});
  c.push_back({"logsumexp[masked rows]", [](Generator& g) { return Tensors{masked_scores(g)}; },
               [](const Tensors& x) { return logsumexp(x[0], {-1}); }});
  c.push_back({"var[axis 1, ddof 1]", one(r), [](const Tensors& x) { return var(x[0], {1}, false, 1); }});
  c.push_back({"var[all]", one(r), [](const Tensors& x) { return var(x[0]); }});

  // ---- layout ----
  c.push_back({"reshape", one(r), [](const Tensors& x) { return reshape(x[0], {4, -1}); }});
  c.push_back({"permute", one(r), [](const Tensors& x) { return permute(x[0], {2, 0, -2}); }});
  c.push_back({"broadcast_to", one({3, 1}), [](const Tensors& x) { return broadcast_to(x[0], {2, 3, 4}); }});
  c.push_back({"slice[step 2, axis -1]", one({3, 7}), [](const Tensors& x) { return slice(x[0], -1, 1, 6, 2); }});
  c.push_back({"slice[negative start]", one(r), [](const Tensors& x) { return slice(x[0], 1, -2, 3); }});
  c.push_back({"pad[low, high, interior]", one({2, 3}),
               [](const Tensors& x) { return pad(x[0], {1, 0}, {0, 2}, {0, 1}, 0.5); }});
  c.push_back({"concat[axis -1]", [](Generator& g) { return Tensors{normal(g, {2, 3}), normal(g, {2, 1}), normal(g, {2, 2})}; },
               [](const Tensors& x) { return concat({x[0], x[1], x[2]}, -1); }});
  c.push_back({"stack[axis 1]", [](Generator& g) { return Tensors{normal(g, {2, 3}), normal(g, {2, 3})}; },
               [](const Tensors& x) { return stack({x[0], x[1]}, 1); }});
  GradcheckCase cast_case{"cast[float64 -> float32 -> float64]", [](Generator& g) {
                            std::vector<double> v = normal(g, {3, 4}).to_vector<double>();
                            for (double& e : v) e = std::round(e * 64) / 64;   // exact in float32
                            return Tensors{Tensor::from_vector(v, {3, 4})};
                          },
                          [](const Tensors& x) { return cast(mul(cast(x[0], DType::F32), 2.0), F64); }};
  cast_case.step = 1.0 / 64;   // a power of two: x +- h stays exact in float32
  cast_case.dyadic = true;
  c.push_back(cast_case);
  c.push_back({"copy[of a transposed view]", one(r), [](const Tensors& x) { return contiguous(transpose(x[0], 0, 2)); }});
  c.push_back({"identity", one(s), [](const Tensors& x) { return identity(x[0]); }});

  // ---- linear algebra ----
  c.push_back({"matmul", [](Generator& g) { return Tensors{normal(g, {3, 4}), normal(g, {4, 2})}; },
               [](const Tensors& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul[batched, broadcast batch]", [](Generator& g) { return Tensors{normal(g, {2, 1, 3, 4}), normal(g, {5, 4, 2})}; },
               [](const Tensors& x) { return matmul(x[0], x[1]); }});
  c.push_back({"matmul[transposed operands]", [](Generator& g) { return Tensors{normal(g, {4, 3}), normal(g, {2, 4})}; },
               [](const Tensors& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], -1, -2)); }});
  c.push_back({"addmm[bias row]", [](Generator& g) { return Tensors{normal(g, {2}), normal(g, {3, 4}), normal(g, {4, 2})}; },
               [](const Tensors& x) { return addmm(x[0], x[1], x[2]); }});
  c.push_back({"addmm[full c, transposed operands, alpha 2]",
               [](Generator& g) { return Tensors{normal(g, {3, 2}), normal(g, {4, 3}), normal(g, {2, 4})}; },
               [](const Tensors& x) { return addmm(x[0], transpose(x[1], 0, 1), transpose(x[2], 0, 1), 2.0); }});
  c.push_back({"addmm[column c, alpha 0.5]",
               [](Generator& g) { return Tensors{normal(g, {3, 1}), normal(g, {3, 4}), normal(g, {4, 2})}; },
               [](const Tensors& x) { return addmm(x[0], x[1], x[2], 0.5); }});
  c.push_back({"matmul[vector]", [](Generator& g) { return Tensors{normal(g, {4}), normal(g, {2, 4, 3})}; },
               [](const Tensors& x) { return matmul(x[0], x[1]); }});
  c.push_back({"linear", [](Generator& g) { return Tensors{normal(g, {2, 3, 4}), normal(g, {5, 4}), normal(g, {5})}; },
               [](const Tensors& x) { return linear(x[0], x[1], x[2]); }});
  // the linear layer with its activation fused, each activation, with and without a bias
  auto linear_act = [](Activation f, bool bias) {
    return [f, bias](const Tensors& x) { return linear_activation(x[0], x[1], bias ? x[2] : Tensor(), f); };
  };
  auto x_w_b = [](Generator& g) { return Tensors{normal(g, {2, 3, 4}), normal(g, {5, 4}), normal(g, {5})}; };
  c.push_back({"linear_activation[gelu]", x_w_b, linear_act(Activation::GeluErf, true)});
  c.push_back({"linear_activation[gelu_tanh, no bias]", [](Generator& g) { return Tensors{normal(g, {3, 4}), normal(g, {5, 4})}; },
               linear_act(Activation::GeluTanh, false)});
  c.push_back({"linear_activation[quick_gelu]", x_w_b, linear_act(Activation::QuickGelu, true)});
  c.push_back({"linear_activation[relu]", x_w_b, linear_act(Activation::Relu, true)});
  // the linear layer added onto a residual stream (x, W, residual, b)
  c.push_back({"linear_residual", [](Generator& g) { return Tensors{normal(g, {2, 3, 4}), normal(g, {5, 4}), normal(g, {2, 3, 5}), normal(g, {5})}; },
               [](const Tensors& x) { return linear_residual(x[0], x[1], x[3], x[2]); }});
  c.push_back({"linear_residual[no bias]", [](Generator& g) { return Tensors{normal(g, {3, 4}), normal(g, {5, 4}), normal(g, {3, 5})}; },
               [](const Tensors& x) { return linear_residual(x[0], x[1], Tensor(), x[2]); }});

  // x (5, 4), W (3, 4), A (2, 4), B (3, 2), b (3): a linear layer with a rank-2 LoRA update
  c.push_back({"lora_linear", [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), normal(g, {3, 2}), normal(g, {3})}; },
               [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 1.5); }});
  c.push_back({"lora_linear[gelu]", [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), normal(g, {3, 2}), normal(g, {3})}; },
               [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 1.5, Activation::GeluErf); }});
  c.push_back({"lora_linear[quick_gelu, no bias]", [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), normal(g, {3, 2})}; },
               [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], Tensor(), 0.5, Activation::QuickGelu); }});
  c.push_back({"lora_linear_residual", [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), normal(g, {3, 2}), normal(g, {3}), normal(g, {5, 3})}; },
               [](const Tensors& x) { return lora_linear_residual(x[0], x[1], x[2], x[3], x[4], 1.5, x[5]); }});
  c.push_back({"lora_linear[no bias]", [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), normal(g, {3, 2})}; },
               [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], Tensor(), 0.5); }});
  // B = 0 (PEFT's init): the rules leave out B's terms at that point (A's gradient is then exactly zero)
  auto zero_b = [](Generator& g) { return Tensors{normal(g, {5, 4}), normal(g, {3, 4}), normal(g, {2, 4}), Tensor::zeros({3, 2}, F64), normal(g, {3}), normal(g, {5, 3})}; };
  c.push_back({"lora_linear[B = 0]", zero_b, [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 1.5); }});
  c.push_back({"lora_linear[gelu, B = 0]", zero_b,
               [](const Tensors& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 1.5, Activation::GeluErf); }});
  c.push_back({"lora_linear_residual[B = 0]", zero_b,
               [](const Tensors& x) { return lora_linear_residual(x[0], x[1], x[2], x[3], x[4], 1.5, x[5]); }});

  // ---- neural-network functions ----
  c.push_back({"softmax[axis -1]", one({3, 5}), [](const Tensors& x) { return softmax(x[0], -1); }});
  c.push_back({"softmax[axis 0]", one({3, 5}), [](const Tensors& x) { return softmax(x[0], 0); }});
  c.push_back({"softmax[masked rows]", [](Generator& g) { return Tensors{masked_scores(g)}; },
               [](const Tensors& x) { return softmax(x[0], -1); }});
  c.push_back({"softmax[logits +-80]", [](Generator& g) { return Tensors{extreme_logits(g, {3, 5})}; },
               [](const Tensors& x) { return softmax(x[0], -1); }});
  c.push_back({"log_softmax[axis -1]", one({3, 5}), [](const Tensors& x) { return log_softmax(x[0], -1); }});
  c.push_back({"log_softmax[axis -2, logits +-80]", [](Generator& g) { return Tensors{extreme_logits(g, {5, 3})}; },
               [](const Tensors& x) { return log_softmax(x[0], -2); }});
  c.push_back({"layer_norm", [](Generator& g) { return Tensors{normal(g, {2, 3, 6}), normal(g, {6}), normal(g, {6})}; },
               [](const Tensors& x) { return layer_norm(x[0], x[1], x[2], 1e-5); }});
  c.push_back({"layer_norm[no affine]", one({3, 6}), [](const Tensors& x) { return layer_norm(x[0], Tensor(), Tensor(), 1e-5); }});
  c.push_back({"layer_norm[tiny variance]", [](Generator& g) { return Tensors{tiny_variance_rows(g, {3, 6}), normal(g, {6}), normal(g, {6})}; },
               [](const Tensors& x) { return layer_norm(x[0], x[1], x[2], 1e-5); }});
  c.push_back({"rms_norm", [](Generator& g) { return Tensors{normal(g, {2, 3, 6}), normal(g, {6})}; },
               [](const Tensors& x) { return rms_norm(x[0], x[1], 1e-6); }});
  c.push_back({"rms_norm[tiny rows]", [](Generator& g) { return Tensors{normal(g, {3, 6}, 1e-4), normal(g, {6})}; },
               [](const Tensors& x) { return rms_norm(x[0], x[1], 1e-6); }});
  c.push_back({"cross_entropy[ignore_index]", [](Generator& g) { return Tensors{normal(g, {2, 3, 5}), ids({1, 4, -100, 0, 2, 3}, {2, 3})}; },
               [](const Tensors& x) { return cross_entropy(x[0], x[1], -100); }});
  c.push_back({"cross_entropy[logits +-80]", [](Generator& g) { return Tensors{extreme_logits(g, {4, 5}), ids({0, 1, 2, 4}, {4})}; },
               [](const Tensors& x) { return cross_entropy(x[0], x[1]); }});

  // ---- indexing ----
  c.push_back({"index_select[axis 1, repeats]", [](Generator& g) { return Tensors{normal(g, {2, 4, 3}), ids({3, 0, 3, 1, 2}, {5})}; },
               [](const Tensors& x) { return index_select(x[0], 1, x[1]); }});
  c.push_back({"index_add[axis 0]", [](Generator& g) { return Tensors{normal(g, {5, 3}), ids({1, 0, 1, 3, 1}, {5})}; },
               [](const Tensors& x) { return index_add({4, 3}, 0, x[1], x[0]); }});
  c.push_back({"gather[axis -1]", [](Generator& g) { return Tensors{normal(g, {3, 4}), ids({0, 3, 3, 1, 2, 2}, {3, 2})}; },
               [](const Tensors& x) { return gather(x[0], -1, x[1]); }});
  c.push_back({"scatter_add[axis 1]", [](Generator& g) { return Tensors{normal(g, {3, 2}), ids({0, 3, 3, 3, 2, 0}, {3, 2})}; },
               [](const Tensors& x) { return scatter_add({3, 4}, 1, x[1], x[0]); }});
  c.push_back({"embedding", [](Generator& g) { return Tensors{normal(g, {6, 3}), ids({5, 0, 2, 2}, {2, 2})}; },
               [](const Tensors& x) { return embedding(x[0], x[1]); }});

  // ---- composites: attention and an MLP block ----
  c.push_back({"attention[causal mask]",
               [](Generator& g) { return Tensors{normal(g, {2, 4, 3}), normal(g, {2, 4, 3}), normal(g, {2, 4, 3})}; },
               [](const Tensors& x) {
                 Tensor mask = Tensor::zeros({4, 4}, F64);
                 double* m = mask.data<double>();
                 for (int i = 0; i < 4; ++i)
                   for (int j = i + 1; j < 4; ++j) m[i * 4 + j] = -kInf;
                 Tensor scores = add(mul(matmul(x[0], transpose(x[1], -1, -2)), 1.0 / std::sqrt(3.0)), mask);
                 return matmul(softmax(scores, -1), x[2]);
               }});
  // The fused primitive: q, k (B, H, Tq|Tk, D), v (B, H, Tk, Dv); the mask is a constant built inside the function.
  // D = 4 and Dv = 8 are whole float64 vectors (read in place), D = 3 and Dv = 5 are not (padded copies).
  auto qkv = [](Shape q, Shape k, Shape v) {
    return [q, k, v](Generator& g) { return Tensors{normal(g, q), normal(g, k), normal(g, v)}; };
  };
  c.push_back({"fused_attention", qkv({2, 3, 5, 4}, {2, 3, 6, 4}, {2, 3, 6, 8}),
               [](const Tensors& x) { return fused_attention(x[0], x[1], x[2], Tensor(), 0.5); }});
  c.push_back({"fused_attention[odd head dims, scale 1]", qkv({1, 2, 7, 3}, {1, 2, 4, 3}, {1, 2, 4, 5}),
               [](const Tensors& x) { return fused_attention(x[0], x[1], x[2], Tensor(), 1.0); }});
  // CLIP text's mask: causal plus padding per batch item, (B, 1, T, T); item 1 pads keys 0..3, so its rows 0..3
  // are masked entirely (zeros out, zero gradient).
  c.push_back({"fused_attention[causal and padding mask, masked rows]", qkv({2, 2, 5, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}),
               [](const Tensors& x) {
                 Tensor mask = Tensor::zeros({2, 1, 5, 5}, F64);
                 double* m = mask.data<double>();
                 for (int b = 0; b < 2; ++b)
                   for (int i = 0; i < 5; ++i)
                     for (int j = 0; j < 5; ++j)
                       if (j > i || (b == 1 && j < 4)) m[(b * 5 + i) * 5 + j] = -kInf;
                 return fused_attention(x[0], x[1], x[2], mask, 1.0 / std::sqrt(4.0));
               }});
  // T5's learned position bias (1, H, Tq, Tk), an input, plus a constant padding mask (B, 1, 1, Tk) that hides
  // item 1's last two keys: the derivatives reach the bias through the sum (summed over the batch), not the -inf.
  c.push_back({"fused_attention[learned bias, padding mask]",
               [](Generator& g) {
                 return Tensors{normal(g, {2, 2, 4, 3}), normal(g, {2, 2, 5, 3}), normal(g, {2, 2, 5, 4}), normal(g, {1, 2, 4, 5})};
               },
               [](const Tensors& x) {
                 Tensor padding = Tensor::zeros({2, 1, 1, 5}, F64);
                 padding.data<double>()[5 + 3] = padding.data<double>()[5 + 4] = -kInf;
                 return fused_attention(x[0], x[1], x[2], add(x[3], padding), 0.8);
               }});
  c.push_back({"fused_attention[inputs of one projection, heads split]",
               [](Generator& g) { return Tensors{normal(g, {2, 6, 3 * 8})}; },
               [](const Tensors& x) {   // q, k, v as strided head views of one (B, T, 3 * H * D) tensor
                 Tensor heads = transpose(reshape(x[0], {2, 6, 3, 2, 4}), 1, 3);   // (B, H, 3, T, D)
                 Tensor q = select(heads, 2, 0), k = select(heads, 2, 1), v = select(heads, 2, 2);
                 return fused_attention(q, k, v, Tensor(), 0.7);
               }});
  c.push_back({"mlp[layer_norm, linear, gelu]",
               [](Generator& g) {
                 return Tensors{normal(g, {2, 4}), normal(g, {4}), normal(g, {4}), normal(g, {6, 4}), normal(g, {6}),
                                normal(g, {4, 6})};
               },
               [](const Tensors& x) {
                 Tensor h = layer_norm(x[0], x[1], x[2], 1e-5);
                 return linear(gelu_erf(linear(h, x[3], x[4])), x[5]);
               }});
  return c;
}

std::vector<GradcheckCase>& registered_cases() {
  static std::vector<GradcheckCase>* cases = new std::vector<GradcheckCase>();
  return *cases;
}

}  // namespace

bool register_gradcheck_case(GradcheckCase c) {
  registered_cases().push_back(std::move(c));
  return true;
}

std::vector<GradcheckCase> gradcheck_cases() {
  static const std::vector<GradcheckCase> builtin = build_cases();
  std::vector<GradcheckCase> all = builtin;
  for (const auto& c : registered_cases()) all.push_back(c);
  return all;
}

}  // namespace linfuse
