#pragma once
// The reference workload of DESIGN.md, layer for layer the model of ../shared/bench/torch_ref.py: a ViT image
// tower on 28x28 images, patch 4 (49 patches + a class token), width 128, 4 layers, 4 heads, MLP 512 (GELU,
// erf form as F.gelu), pre-norm blocks, final LayerNorm on the class token, a 10-way linear head.
#include <cmath>
#include <memory>

#include "autodiff/ops.h"
#include "nn/attention.h"
#include "nn/layers.h"

namespace linfuse::bench {

constexpr int64_t kWidth = 128, kLayers = 4, kHeads = 4, kPatch = 4, kImage = 28, kClasses = 10;

// How the blocks compute attention: the fused primitive (what nn::scaled_dot_product_attention runs), the composed
// ops it replaced, or none (context = q + k + v: two elementwise adds, so every projection still gets its gradient),
// a measuring device only: the step time without attention, which the other two are compared against to isolate
// attention's share of a step (train_step_bench --attention).
enum class AttentionPath { Fused, Composed, None };
inline AttentionPath attention_path = AttentionPath::Fused;

inline Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  switch (attention_path) {
    case AttentionPath::Composed: return nn::composed_attention(q, k, v, Tensor(), scale);
    case AttentionPath::None: return add(add(q, k), v);
    default: return nn::scaled_dot_product_attention(q, k, v, Tensor(), scale);
  }
}

// Whether the blocks add their residuals inside o's and fc2's products (nn::add_linear, the default) or with add()
// after them: the same bits either way, a switch for train_step_bench --interleave residual to time the fusion.
inline bool fused_residual = true;

inline Tensor residual_linear(const Tensor& residual, nn::Linear& layer, const Tensor& x) {
  return fused_residual ? nn::add_linear(residual, layer, x) : add(residual, layer.forward(x));
}

// Whether the last block computes only what the loss reads (the class token's row after k and v), or every row.
inline bool class_token_last_block = false;

struct ReferenceBlock : nn::Module {
  std::shared_ptr<nn::LayerNorm> ln1, ln2;
  std::shared_ptr<nn::Linear> q, k, v, o, fc1, fc2;
  explicit ReferenceBlock(Generator& g) {
    ln1 = register_module("ln1", std::make_shared<nn::LayerNorm>(kWidth));
    ln2 = register_module("ln2", std::make_shared<nn::LayerNorm>(kWidth));
    q = register_module("q", std::make_shared<nn::Linear>(kWidth, kWidth, true, g));
    k = register_module("k", std::make_shared<nn::Linear>(kWidth, kWidth, true, g));
    v = register_module("v", std::make_shared<nn::Linear>(kWidth, kWidth, true, g));
    o = register_module("o", std::make_shared<nn::Linear>(kWidth, kWidth, true, g));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(kWidth, 4 * kWidth, true, g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(4 * kWidth, kWidth, true, g));
  }
  // x (B, T, D) -> (B, T, D), or with class_token_only (B, 1, D): the class token's row alone, its keys and values
  // from every row (what the loss reads of the last block).
  Tensor forward(const Tensor& x, bool class_token_only = false) {
    Tensor h = ln1->forward(x);
    Tensor rows = class_token_only ? slice(h, 1, 0, 1) : h, residual = class_token_only ? slice(x, 1, 0, 1) : x;
    Tensor qh = nn::split_heads(q->forward(rows), kHeads), kh = nn::split_heads(k->forward(h), kHeads),
           vh = nn::split_heads(v->forward(h), kHeads);
    Tensor a = attention(qh, kh, vh, 1.0 / std::sqrt(double(kWidth / kHeads)));
    Tensor x1 = residual_linear(residual, *o, nn::merge_heads(a));   // x + o(a)
    return residual_linear(x1, *fc2, nn::activate_linear(nn::Activation::GeluErf, *fc1, ln2->forward(x1)));
  }
};

struct ReferenceViT : nn::Module {
  std::shared_ptr<nn::Linear> patch, head;
  std::shared_ptr<nn::ModuleList<ReferenceBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln;
  Tensor cls, pos;
  explicit ReferenceViT(uint64_t seed) {
    Generator g(seed);
    int64_t n = (kImage / kPatch) * (kImage / kPatch);
    patch = register_module("patch", std::make_shared<nn::Linear>(kPatch * kPatch, kWidth, true, g));
    cls = Tensor::zeros({1, 1, kWidth});
    register_parameter("cls", cls);
    pos = g.normal({1, n + 1, kWidth}, 0, 0.02);
    register_parameter("pos", pos);
    blocks = register_module("blocks", std::make_shared<nn::ModuleList<ReferenceBlock>>());
    for (int64_t i = 0; i < kLayers; ++i) blocks->push_back(std::make_shared<ReferenceBlock>(g));
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(kWidth));
    head = register_module("head", std::make_shared<nn::Linear>(kWidth, kClasses, true, g));
  }
  // images (B, 28, 28) -> logits (B, 10)
  Tensor forward(const Tensor& images) {
    int64_t b = images.size(0), g = kImage / kPatch;
    // unfold into patches: (B, 7, 4, 7, 4) -> (B, 7, 7, 4, 4) -> (B, 49, 16)
    Tensor p = reshape(permute(reshape(images, {b, g, kPatch, g, kPatch}), {0, 1, 3, 2, 4}), {b, g * g, kPatch * kPatch});
    Tensor x = concat({broadcast_to(cls, {b, 1, kWidth}), patch->forward(p)}, 1);
    x = add(x, pos);
    for (size_t i = 0; i < blocks->size(); ++i) x = (*blocks)[i]->forward(x, class_token_last_block && i + 1 == blocks->size());
    return head->forward(ln->forward(select(x, 1, 0)));
  }
};

}  // namespace linfuse::bench
