#pragma once
// A small transformer-shaped block stack in float64 for PEFT tests: attention + GELU MLP, pre-norm.
#include <cmath>
#include <memory>

#include "autodiff/ops.h"
#include "nn/attention.h"
#include "nn/layers.h"

namespace linfuse::testing {

struct TinyBlock : nn::Module {
  std::shared_ptr<nn::LayerNorm> ln1, ln2;
  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  TinyBlock(Generator& g, int64_t d) {
    ln1 = register_module("ln1", std::make_shared<nn::LayerNorm>(d, 1e-5, DType::F64));
    q_proj = register_module("q_proj", std::make_shared<nn::Linear>(d, d, true, g, DType::F64));
    k_proj = register_module("k_proj", std::make_shared<nn::Linear>(d, d, true, g, DType::F64));
    v_proj = register_module("v_proj", std::make_shared<nn::Linear>(d, d, true, g, DType::F64));
    out_proj = register_module("out_proj", std::make_shared<nn::Linear>(d, d, true, g, DType::F64));
    ln2 = register_module("ln2", std::make_shared<nn::LayerNorm>(d, 1e-5, DType::F64));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(d, 2 * d, true, g, DType::F64));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(2 * d, d, true, g, DType::F64));
  }
  Tensor forward(const Tensor& x) {   // x (B, T, d)
    Tensor h = ln1->forward(x);
    Tensor q = nn::split_heads(q_proj->forward(h), 2), k = nn::split_heads(k_proj->forward(h), 2),
           v = nn::split_heads(v_proj->forward(h), 2);
    Tensor a = nn::merge_heads(nn::scaled_dot_product_attention(q, k, v, Tensor(), 1 / std::sqrt(double(q.size(-1)))));
    Tensor x1 = add(x, out_proj->forward(a));
    return add(x1, fc2->forward(gelu_tanh(fc1->forward(ln2->forward(x1)))));
  }
};

struct TinyNet : nn::Module {
  std::shared_ptr<nn::ModuleList<TinyBlock>> layers;
  std::shared_ptr<nn::Linear> head;
  explicit TinyNet(uint64_t seed = 0, int64_t d = 8, int64_t classes = 3) {
    Generator g(seed);
    layers = register_module("layers", std::make_shared<nn::ModuleList<TinyBlock>>());
    layers->push_back(std::make_shared<TinyBlock>(g, d));
    layers->push_back(std::make_shared<TinyBlock>(g, d));
    head = register_module("head", std::make_shared<nn::Linear>(d, classes, false, g, DType::F64));
  }
  Tensor forward(const Tensor& x) {   // (B, T, d) -> logits (B, classes) from the mean token
    Tensor h = x;
    for (auto& b : *layers) h = b->forward(h);
    return head->forward(mean(h, {1}));
  }
};

}  // namespace linfuse::testing
