#include "autodiff/tape.h"

#include <atomic>
#include <stdexcept>

#include "autodiff/primitive.h"

namespace linfuse {
namespace {

struct TapeState {
  std::vector<std::weak_ptr<Node>> entries;
  size_t compact_at = 1024;
  uint64_t seq = 1;
};
thread_local TapeState tape_state;
thread_local bool grad_mode = true;
thread_local uint64_t dual_level = 0;          // 0: no active level
thread_local bool dual_records = true;
thread_local DualLevel* dual_level_object = nullptr;
std::atomic<uint64_t> dual_level_counter{0};

void compact() {
  auto& e = tape_state.entries;
  std::erase_if(e, [](const std::weak_ptr<Node>& w) {
    auto n = w.lock();
    return !n || n->released();
  });
  tape_state.compact_at = std::max<size_t>(1024, 2 * e.size());
}

}  // namespace

Node::Node(std::shared_ptr<Primitive> primitive, std::vector<Tensor> inputs, const Tensor& output, uint64_t seq)
    : primitive_(std::move(primitive)), inputs_(std::move(inputs)), seq_(seq) {
  output_ = output.impl_ptr();
}

Tensor Node::output() const {
  auto impl = output_.lock();
  if (!impl) return Tensor();
  return Tensor::from_impl(impl);
}

void Node::release() {
  inputs_.clear();
  inputs_.shrink_to_fit();
  primitive_->release();
  released_ = true;
}

namespace tape {

void record(std::shared_ptr<Primitive> primitive, const std::vector<Tensor>& inputs, Tensor& output) {
  auto node = std::make_shared<Node>(std::move(primitive), inputs, output, tape_state.seq++);
  AutogradMeta& meta = output.autograd();
  meta.requires_grad = true;
  meta.node = node;
  tape_state.entries.push_back(node);
  if (tape_state.entries.size() >= tape_state.compact_at) compact();
}

std::vector<std::shared_ptr<Node>> live_nodes() {
  compact();
  std::vector<std::shared_ptr<Node>> out;
  out.reserve(tape_state.entries.size());
  for (auto& w : tape_state.entries)
    if (auto n = w.lock()) out.push_back(std::move(n));
  return out;
}

size_t size() { return tape_state.entries.size(); }
uint64_t next_seq() { return tape_state.seq; }

}  // namespace tape

bool grad_enabled() { return grad_mode; }
NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(grad_mode) { grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { grad_mode = previous_; }

DualLevel::DualLevel(bool record_tangents) : previous_object_(dual_level_object), previous_records_(dual_records) {
  if (dual_level != 0)
    throw std::logic_error("[DualLevel] forward-mode levels do not nest; end the active level first");
  dual_level = ++dual_level_counter;
  dual_records = record_tangents;
  dual_level_object = this;
}

DualLevel::~DualLevel() {
  for (auto& w : holders_)
    if (auto impl = w.lock())
      if (impl->autograd && impl->autograd->tangent_level == dual_level) {
        impl->autograd->tangent = Tensor();
        impl->autograd->tangent_level = 0;
      }
  dual_level = 0;
  dual_records = previous_records_;
  dual_level_object = previous_object_;
}

bool DualLevel::active() { return dual_level != 0; }
uint64_t DualLevel::current() { return dual_level; }
bool DualLevel::records_tangents() { return dual_records; }

void set_tangent(Tensor& primal, const Tensor& tangent) {
  if (!DualLevel::active()) throw std::logic_error("[set_tangent] no active DualLevel");
  if (tangent.defined() && (tangent.shape() != primal.shape() || tangent.dtype() != primal.dtype()))
    throw std::invalid_argument("[set_tangent] tangent " + tangent.describe() + " does not match primal " + primal.describe());
  AutogradMeta& meta = primal.autograd();
  meta.tangent = tangent;
  meta.tangent_level = DualLevel::current();
  if (DualLevel* level = dual_level_object)
    level->holders_.push_back(primal.impl_ptr());
}

Tensor tangent_of(const Tensor& t) {
  if (!DualLevel::active() || !t.defined() || !t.has_autograd()) return Tensor();
  const AutogradMeta& meta = t.autograd();
  return meta.tangent_level == DualLevel::current() ? meta.tangent : Tensor();
}

ForwardModeSuspend::ForwardModeSuspend() : previous_(dual_level) { dual_level = 0; }
ForwardModeSuspend::~ForwardModeSuspend() { dual_level = previous_; }

}  // namespace linfuse
