#pragma once
// The reverse-mode tape and the forward-mode dual level.
//
// Reverse mode: every op whose differentiable inputs require a gradient appends a Node to the thread's tape,
// in execution order. A node is owned by the tensor it produced (so an unused result frees its history);
// the tape keeps weak references only. backward() walks the tape from the end, seeds cotangents, runs each
// node's VJP rule and frees the node's saved inputs as soon as they are consumed.
//
// Forward mode: inside a DualLevel, tensors may carry tangents (set_tangent); every op on an input with a
// tangent computes its output's tangent with the primitive's JVP rule, eagerly. The JVP rules are ordinary
// ops, so when the tangents depend on tensors that require gradients the tape records them too:
// reverse-over-forward (grad of a jvp) works without anything special.
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace linfuse {

class Primitive;

class Node {
 public:
  Node(std::shared_ptr<Primitive> primitive, std::vector<Tensor> inputs, const Tensor& output, uint64_t seq);
  Primitive& primitive() const { return *primitive_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  Tensor output() const;   // the tensor this node produced (alive while the node is)
  uint64_t seq() const { return seq_; }
  bool released() const { return released_; }
  void release();   // drops the saved inputs once backward has consumed them

 private:
  std::shared_ptr<Primitive> primitive_;
  std::vector<Tensor> inputs_;
  std::weak_ptr<TensorImpl> output_;   // weak: the output owns this node
  uint64_t seq_;
  bool released_ = false;
};

namespace tape {
// Appends a node for `output` = primitive(inputs) and marks output as requiring grad.
void record(std::shared_ptr<Primitive> primitive, const std::vector<Tensor>& inputs, Tensor& output);
// Live nodes in execution order (for backward and linearize); drops expired entries.
std::vector<std::shared_ptr<Node>> live_nodes();
size_t size();        // entries including expired ones (for tests of tape hygiene)
uint64_t next_seq();  // the sequence number the next node will get
}  // namespace tape

// Gradient recording on this thread (on by default).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// A forward-mode scope. Tangents set inside belong to this level and are ignored (and released) after it.
// `record_tangents` = false computes tangents without recording them on the tape even when gradients are
// on: the efficient training of linearized models needs only the primal graph on the tape.
// Levels do not nest (forward-over-forward is not supported); a nested DualLevel throws. Inside a
// ForwardModeSuspend a new level may start (a primitive can run its own forward-mode pass); the suspended
// level is restored when it ends.
class DualLevel {
 public:
  explicit DualLevel(bool record_tangents = true);
  ~DualLevel();
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
  static bool active();
  static uint64_t current();
  static bool records_tangents();

 private:
  friend void set_tangent(Tensor&, const Tensor&);
  std::vector<std::weak_ptr<TensorImpl>> holders_;   // tensors given tangents at this level
  DualLevel* previous_object_;
  bool previous_records_;
};

// Attaches a tangent to `primal` for the active dual level (shape and dtype must match).
void set_tangent(Tensor& primal, const Tensor& tangent);
// The tangent of `t` at the active level, or undefined (meaning zero).
Tensor tangent_of(const Tensor& t);

// Suspends forward mode (used while JVP and VJP rules run, so their ops do not propagate tangents).
class ForwardModeSuspend {
 public:
  ForwardModeSuspend();
  ~ForwardModeSuspend();
  ForwardModeSuspend(const ForwardModeSuspend&) = delete;
  ForwardModeSuspend& operator=(const ForwardModeSuspend&) = delete;

 private:
  uint64_t previous_;
};

}  // namespace linfuse
