#include "autodiff/functional.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "autodiff/ops.h"
#include "autodiff/primitive.h"
#include "autodiff/tape.h"
#include "tensor/kernels.h"

namespace linfuse {
namespace {

class Identity : public Primitive {
  LINFUSE_PRIMITIVE("identity")
  Tensor forward(const Tensors& in) override { return in[0].detach(); }
  Tensors vjp(const Tensors&, const Tensor&, const Tensor& g, const std::vector<bool>&) override { return {g}; }
  Tensor jvp(const Tensors&, const Tensor&, const Tensors& t) override { return t[0]; }
};

bool is_leaf(const Tensor& t) { return !t.has_autograd() || !t.autograd().node; }

// The cotangents collected while walking the tape, keyed by tensor identity.
struct Cotangents {
  struct Entry {
    Tensor tensor;      // a handle to the tensor the cotangent belongs to
    Tensor cotangent;
  };
  std::unordered_map<TensorImpl*, Entry> entries;

  void accumulate(const Tensor& t, const Tensor& g) {
    auto [it, inserted] = entries.try_emplace(t.impl(), Entry{t, g});
    if (!inserted) it->second.cotangent = add(it->second.cotangent, g);
  }
};

Tensor default_seed(const Tensor& output, const char* op) {
  if (output.numel() != 1)
    throw std::invalid_argument(std::string("[") + op + "] needs a seed (cotangent) for a non-scalar output " +
                                output.describe());
  return Tensor::ones(output.shape(), output.dtype());
}

// Walks the tape backwards from the seeded outputs. Nodes created at or before `stop_seq` are not visited.
// Cotangents of tensors in `keep` are kept when reached rather than propagated and dropped.
Cotangents walk(const Tensors& outputs, const Tensors& seeds, uint64_t stop_seq, bool retain_graph, bool create_graph,
                const std::unordered_set<TensorImpl*>& keep) {
  Cotangents cot;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& out = outputs[k];
    if (!out.requires_grad()) continue;
    if (!is_leaf(out) && out.autograd().node->released())
      throw std::logic_error("[backward] the graph behind " + out.describe() +
                             " was freed by an earlier backward; pass retain_graph = true to the first one");
    Tensor seed = seeds[k].defined() ? seeds[k] : default_seed(out, "backward");
    if (seed.shape() != out.shape())
      throw std::invalid_argument("[backward] seed " + seed.describe() + " does not match output " + out.describe());
    cot.accumulate(out, seed);
  }
  ForwardModeSuspend no_tangents;
  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> with_grad;
  if (create_graph) with_grad.emplace();
  else no_grad.emplace();

  std::vector<std::shared_ptr<Node>> nodes = tape::live_nodes();
  for (size_t n = nodes.size(); n-- > 0;) {
    Node& node = *nodes[n];
    if (node.seq() <= stop_seq) break;
    Tensor out = node.output();
    if (!out.defined()) continue;
    auto it = cot.entries.find(out.impl());
    if (it == cot.entries.end() || keep.count(out.impl())) continue;
    Tensor g = it->second.cotangent;
    cot.entries.erase(it);
    const Tensors& inputs = node.inputs();
    std::vector<bool> wanted(inputs.size());
    bool any = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      wanted[i] = inputs[i].defined() && node.primitive().differentiable_input(i) && inputs[i].requires_grad();
      any |= wanted[i];
    }
    if (any) {
      Tensors grads = node.primitive().vjp(inputs, out, g, wanted);
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (!wanted[i] || i >= grads.size() || !grads[i].defined()) continue;
        if (grads[i].shape() != inputs[i].shape())
          throw std::logic_error(std::string("[") + node.primitive().name() + "::vjp] returned " + grads[i].describe() +
                                 " for an input " + inputs[i].describe());
        cot.accumulate(inputs[i], grads[i]);
      }
    }
    if (!retain_graph && !create_graph) node.release();
  }
  return cot;
}

uint64_t creation_seq(const Tensor& t) { return is_leaf(t) ? 0 : t.autograd().node->seq() - 1; }

// A fresh handle on `primal` to differentiate with respect to: connected to the outer graph when the
// primal itself is being differentiated, else a new leaf.
Tensor differentiable_alias(const Tensor& primal) {
  if (primal.requires_grad() && grad_enabled()) return identity(primal);
  Tensor alias = primal.detach();
  if (is_floating(alias.dtype())) alias.set_requires_grad(true);
  return alias;
}

}  // namespace

Tensor identity(const Tensor& a) { return apply_new<Identity>({a}); }

void backward(const Tensor& output, const Tensor& seed, bool retain_graph, bool create_graph) {
  if (!output.requires_grad())
    throw std::invalid_argument("[backward] " + output.describe() +
                                " does not depend on any tensor that requires a gradient (was it computed under NoGradGuard?)");
  Cotangents cot = walk({output}, {seed}, 0, retain_graph, create_graph, {});
  std::optional<NoGradGuard> no_grad;
  if (!create_graph) no_grad.emplace();
  for (auto& [impl, entry] : cot.entries) {
    Tensor& leaf = entry.tensor;
    if (!is_leaf(leaf) || !leaf.requires_grad()) continue;
    Tensor g = create_graph ? entry.cotangent : entry.cotangent.detach();
    leaf.set_grad(leaf.grad().defined() ? add(leaf.grad(), g) : kernels::contiguous(g));
  }
}

Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& seeds_in, bool retain_graph, bool create_graph) {
  Tensors seeds = seeds_in;
  seeds.resize(outputs.size());
  uint64_t stop = UINT64_MAX;
  std::unordered_set<TensorImpl*> keep;
  for (const Tensor& in : inputs) {
    stop = std::min(stop, creation_seq(in));
    keep.insert(in.impl());
  }
  if (inputs.empty()) stop = 0;
  Cotangents cot = walk(outputs, seeds, stop, retain_graph, create_graph, keep);
  Tensors result;
  for (const Tensor& in : inputs) {
    auto it = cot.entries.find(in.impl());
    result.push_back(it != cot.entries.end() ? it->second.cotangent : zeros_like(in));
  }
  return result;
}

VjpResult vjp(const Function& f, const Tensors& primals, bool create_graph) {
  Tensors aliases;
  for (const Tensor& p : primals) aliases.push_back(differentiable_alias(p));
  Tensor out;
  {
    EnableGradGuard with_grad;
    out = f(aliases);
  }
  auto pullback = [out, aliases, create_graph](const Tensor& cotangent) {
    if (!out.requires_grad()) {
      Tensors zeros;
      for (const Tensor& a : aliases) zeros.push_back(zeros_like(a));
      return zeros;
    }
    return grad({out}, aliases, {cotangent}, /*retain_graph=*/true, create_graph);
  };
  Tensor shown = out;
  if (!create_graph) shown = out.detach();
  return {shown, pullback};
}

std::pair<Tensor, Tensor> jvp(const Function& f, const Tensors& primals, const Tensors& tangents) {
  if (primals.size() != tangents.size())
    throw std::invalid_argument("[jvp] " + std::to_string(primals.size()) + " primals but " + std::to_string(tangents.size()) +
                                " tangents");
  DualLevel level;
  Tensors duals;
  for (size_t i = 0; i < primals.size(); ++i) {
    Tensor d = identity(primals[i]);
    if (tangents[i].defined() && tangents[i].shape() != primals[i].shape())
      throw std::invalid_argument("[jvp] tangent " + tangents[i].describe() + " does not match primal " + primals[i].describe());
    set_tangent(d, tangents[i]);
    duals.push_back(d);
  }
  Tensor out = f(duals);
  Tensor t = tangent_of(out);
  if (!t.defined()) t = zeros_like(out);
  return {out, t};
}

Linearized linearize(const Function& f, const Tensors& primals) {
  Tensors leaves;
  for (const Tensor& p : primals) {
    Tensor leaf = p.detach();
    if (is_floating(leaf.dtype())) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  uint64_t first = tape::next_seq();
  Tensor out;
  {
    EnableGradGuard with_grad;
    ForwardModeSuspend no_tangents;
    out = f(leaves);
  }
  // The primal computation: nodes recorded while f ran (kept alive by this closure).
  std::vector<std::shared_ptr<Node>> nodes;
  for (auto& n : tape::live_nodes())
    if (n->seq() >= first) nodes.push_back(n);
  auto linear_map = [nodes, leaves, out](const Tensors& tangents) {
    if (tangents.size() != leaves.size())
      throw std::invalid_argument("[linearize] " + std::to_string(leaves.size()) + " primals but " +
                                  std::to_string(tangents.size()) + " tangents");
    std::unordered_map<TensorImpl*, Tensor> tangent_of_impl;
    for (size_t i = 0; i < leaves.size(); ++i)
      if (tangents[i].defined()) {
        if (tangents[i].shape() != leaves[i].shape())
          throw std::invalid_argument("[linearize] tangent " + tangents[i].describe() + " does not match primal " +
                                      leaves[i].describe());
        tangent_of_impl[leaves[i].impl()] = tangents[i];
      }
    ForwardModeSuspend no_tangents;
    for (const auto& node : nodes) {
      const Tensors& inputs = node->inputs();
      Tensors ts(inputs.size());
      bool any = false;
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (!inputs[i].defined() || !node->primitive().differentiable_input(i)) continue;
        auto it = tangent_of_impl.find(inputs[i].impl());
        if (it != tangent_of_impl.end()) {
          ts[i] = it->second;
          any = true;
        }
      }
      if (!any) continue;
      Tensor o = node->output();
      if (!o.defined()) continue;   // a result nobody kept: nothing downstream reads its tangent
      Tensor t = node->primitive().jvp(inputs, o, ts);
      if (t.defined()) tangent_of_impl[o.impl()] = t;
    }
    auto it = tangent_of_impl.find(out.impl());
    return it != tangent_of_impl.end() ? it->second : zeros_like(out);
  };
  return {out.detach(), linear_map};
}

Tensors hvp(const Function& f, const Tensors& primals, const Tensors& vectors) {
  Tensors xs;
  for (const Tensor& p : primals) {
    Tensor x = p.detach();
    if (is_floating(x.dtype())) x.set_requires_grad(true);
    xs.push_back(x);
  }
  EnableGradGuard with_grad;
  auto [out, directional] = jvp(f, xs, vectors);
  if (out.numel() != 1) throw std::invalid_argument("[hvp] f must return a scalar, got " + out.describe());
  if (!directional.requires_grad()) {
    Tensors zeros;
    for (const Tensor& x : xs) zeros.push_back(zeros_like(x));
    return zeros;
  }
  return grad({directional}, xs);
}

}  // namespace linfuse
