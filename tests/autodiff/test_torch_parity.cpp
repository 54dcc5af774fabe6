// Parity with PyTorch on composite functions (fixture written by tools/make_autodiff_fixtures.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"

using namespace linfuse;
using json = nlohmann::json;

namespace {

Tensor from_json(const json& j, DType dtype) {
  Shape shape = j["shape"].get<Shape>();
  std::vector<double> data = j["data"].get<std::vector<double>>();
  return cast(Tensor::from_vector(data, shape), dtype);
}

// max |a - b| / max(1, max |b|)
double rel_error(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double d = 0, s = 1;
  for (size_t i = 0; i < x.size(); ++i) {
    d = std::max(d, std::abs(x[i] - y[i]));
    s = std::max(s, std::abs(y[i]));
  }
  return d / s;
}

// The fixture's mask: causal, and batch item 1 pads its last key.
Tensor attention_mask(const Tensor& q) {
  int64_t t = q.size(-2);
  std::vector<double> m(2 * t * t, 0.0);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < t; ++i)
      for (int j = 0; j < t; ++j)
        if (j > i || (b == 1 && j == t - 1)) m[(b * t + i) * t + j] = -std::numeric_limits<double>::infinity();
  return cast(Tensor::from_vector(m, {2, 1, t, t}), q.dtype());
}

Tensor attention(const Tensors& x) {
  const Tensor &q = x[0], &k = x[1], &v = x[2];
  Tensor scores = add(mul(matmul(q, transpose(k, -1, -2)), 1.0 / std::sqrt(double(q.size(-1)))), attention_mask(q));
  return matmul(softmax(scores, -1), v);
}

// The same attention as one fused primitive.
Tensor attention_fused(const Tensors& x) {
  return fused_attention(x[0], x[1], x[2], attention_mask(x[0]), 1.0 / std::sqrt(double(x[0].size(-1))));
}

Tensor mlp_block(const Tensors& x, bool tanh_gelu) {
  Tensor h = layer_norm(x[0], x[1], x[2], 1e-5);
  Tensor a = linear(h, x[3], x[4]);
  return add(x[0], linear(tanh_gelu ? gelu_tanh(a) : gelu_erf(a), x[5], x[6]));
}

Tensor t5_norm_ffn(const Tensors& x) {
  Tensor h = rms_norm(x[0], x[1], 1e-6);
  return linear(mul(gelu_tanh(linear(h, x[2])), linear(h, x[3])), x[4]);
}

Tensor ce(const Tensors& x) {
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{3, -100, 0, 4, 4, -100, 1}, {7});
  return reshape(cross_entropy(x[0], labels, -100), {1});
}

}  // namespace

TEST_CASE("outputs, gradients and JVPs match PyTorch on attention (composed and fused), MLP blocks, T5 FFN and cross entropy",
          "[autodiff][parity]") {
  std::ifstream in(linfuse::testing::source_path("tests/fixtures/autodiff_parity.json"));
  REQUIRE(in.good());
  json fixture = json::parse(in);
  std::map<std::string, Function> functions{
      {"attention", attention},
      {"mlp_block_gelu_erf", [](const Tensors& x) { return mlp_block(x, false); }},
      {"mlp_block_gelu_tanh", [](const Tensors& x) { return mlp_block(x, true); }},
      {"t5_rmsnorm_gated_gelu", t5_norm_ffn},
      {"cross_entropy_ignore_index", ce},
  };
  REQUIRE(fixture["cases"].size() == 10);
  for (const json& c : fixture["cases"]) {
    std::string name = c["name"], dt = c["dtype"];
    DType dtype = dt == "float64" ? DType::F64 : DType::F32;
    double tol = dtype == DType::F64 ? 1e-12 : 2e-5;
    REQUIRE(functions.count(name));
    // The fixture's attention is also checked through the fused primitive (fused_attention).
    std::vector<std::pair<std::string, Function>> variants{{name, functions[name]}};
    if (name == "attention") variants.push_back({"attention (fused primitive)", attention_fused});
    for (const auto& [label, f] : variants) {
      DYNAMIC_SECTION(label << " " << dt) {
        Tensors inputs, tangents;
        for (const json& t : c["inputs"]) inputs.push_back(from_json(t, dtype).set_requires_grad(true));
        for (const json& t : c["tangents"]) tangents.push_back(from_json(t, dtype));
        Tensor out = f(inputs);
        double out_err = rel_error(out, from_json(c["output"], dtype));
        Tensors grads = grad({out}, inputs, {from_json(c["cotangent"], dtype)});
        double grad_err = 0;
        for (size_t i = 0; i < grads.size(); ++i)
          grad_err = std::max(grad_err, rel_error(grads[i], from_json(c["grads"][i], dtype)));
        Tensors primals;
        for (const Tensor& t : inputs) primals.push_back(t.detach());
        auto [y, jv] = jvp(f, primals, tangents);
        double jvp_err = rel_error(jv, from_json(c["jvp"], dtype));
        INFO("output " << out_err << " grads " << grad_err << " jvp " << jvp_err);
        CHECK(out_err < tol);
        CHECK(grad_err < tol);
        CHECK(jvp_err < tol);
      }
    }
  }
}
