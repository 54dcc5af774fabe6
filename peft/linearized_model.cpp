#include "peft/linearized_model.h"

#include <optional>
#include <set>
#include <stdexcept>

#include "autodiff/functional.h"
#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "autodiff/primitive.h"
#include "autodiff/tape.h"
#include "nn/layers.h"
#include "tensor/kernels.h"

namespace linfuse::peft {
namespace {

// Temporarily points the module's parameter members at other tensors; restores them when destroyed.
class SlotSwap {
 public:
  SlotSwap(const std::vector<Tensor*>& slots, const std::vector<Tensor>& values) : slots_(slots) {
    for (size_t i = 0; i < slots.size(); ++i) {
      saved_.push_back(*slots[i]);
      *slots[i] = values[i];
    }
  }
  ~SlotSwap() {
    for (size_t i = 0; i < slots_.size(); ++i) *slots_[i] = saved_[i];
  }

 private:
  const std::vector<Tensor*>& slots_;
  std::vector<Tensor> saved_;
};

// Runs forward at phi0 with tangents; returns (primal output, its tangent). Leaves for the primal graph are
// fresh tensors holding phi0 (requiring grad only if `record`).
std::pair<Tensor, Tensor> primal_and_tangent(const std::function<Tensor()>& forward, const std::vector<Tensor*>& slots,
                                             const std::vector<Tensor>& phi0, const std::vector<Tensor>& directions,
                                             bool record, std::vector<Tensor>& leaves) {
  leaves.clear();
  for (const Tensor& p0 : phi0) {
    Tensor leaf = p0.detach();
    if (record) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  SlotSwap swap(slots, leaves);
  DualLevel level(/*record_tangents=*/false);
  for (size_t i = 0; i < leaves.size(); ++i) set_tangent(leaves[i], directions[i]);
  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> with_grad;
  if (record) with_grad.emplace();
  else no_grad.emplace();
  Tensor out = forward();
  Tensor t = tangent_of(out);
  if (!t.defined()) t = zeros_like(out);
  return {out, t};
}

class LinearizedCall : public Primitive {
  LINFUSE_PRIMITIVE("linearized_call")
 public:
  LinearizedCall(std::function<Tensor()> forward, std::vector<Tensor*> slots, std::vector<Tensor> phi0)
      : forward_(std::move(forward)), slots_(std::move(slots)), phi0_(std::move(phi0)) {}

  // inputs: phi (one per slot)
  Tensor forward(const Tensors& phi) override {
    // Record the primal graph only when apply_primitive will record this node (someone wants J^T g).
    bool any_grad = false;
    for (const Tensor& p : phi) any_grad |= p.requires_grad();
    bool record = grad_enabled() && any_grad;
    std::vector<Tensor> directions;
    {
      NoGradGuard no_grad;
      ForwardModeSuspend no_tangents;
      for (size_t i = 0; i < phi.size(); ++i) directions.push_back(sub(phi[i].detach(), phi0_[i]));
    }
    // An outer forward-mode level (someone takes a JVP of f_lin) is suspended: jvp() below handles it.
    ForwardModeSuspend outer;
    auto [out, t] = primal_and_tangent(forward_, slots_, phi0_, directions, record, leaves_);
    primal_out_ = record ? out : Tensor();
    if (!record) leaves_.clear();
    NoGradGuard no_grad;
    return add(out.detach(), t);
  }

  // J^T g: one VJP of the primal graph recorded at phi0.
  Tensors vjp(const Tensors& phi, const Tensor&, const Tensor& g, const std::vector<bool>&) override {
    if (!primal_out_.defined())
      throw std::logic_error("[linearized_call] no primal graph was recorded (forward ran without gradients)");
    // J^T g is linear in g and does not depend on phi (J is taken at phi0), so recording it (create_graph)
    // only needs the dependence on g, which grad() records.
    Tensors grads = grad({primal_out_}, leaves_, {g}, /*retain_graph=*/false, /*create_graph=*/grad_enabled());
    for (size_t i = 0; i < grads.size(); ++i)
      if (grads[i].dtype() != phi[i].dtype()) grads[i] = cast(grads[i], phi[i].dtype());
    return grads;
  }

  // J t: a forward-mode pass at phi0 along t.
  Tensor jvp(const Tensors& phi, const Tensor& out, const Tensors& t) override {
    std::vector<Tensor> directions;
    for (size_t i = 0; i < phi.size(); ++i) directions.push_back(t[i].defined() ? t[i] : zeros_like(phi[i]));
    std::vector<Tensor> leaves;
    auto [primal, tangent] = primal_and_tangent(forward_, slots_, phi0_, directions, false, leaves);
    (void)out;
    return tangent;
  }

  void release() override {
    primal_out_ = Tensor();
    leaves_.clear();
  }

 private:
  std::function<Tensor()> forward_;
  std::vector<Tensor*> slots_;
  std::vector<Tensor> phi0_;
  Tensor primal_out_;            // root of the primal graph at phi0 (while a backward may come)
  std::vector<Tensor> leaves_;   // its phi0 leaves
};

}  // namespace

Tensor linearized_call(const std::function<Tensor()>& forward, const std::vector<Tensor*>& slots,
                       const std::vector<Tensor>& phi0, const std::vector<Tensor>& phi) {
  if (slots.size() != phi0.size() || slots.size() != phi.size())
    throw std::invalid_argument("[linearized_call] slots, phi0 and phi must have one entry each");
  for (size_t i = 0; i < phi.size(); ++i)
    if (phi[i].shape() != phi0[i].shape())
      throw std::invalid_argument("[linearized_call] phi " + phi[i].describe() + " does not match phi0 " + phi0[i].describe());
  return apply_new<LinearizedCall>(phi, forward, slots, phi0);
}

LinearizedModel::LinearizedModel(nn::Module& model, const std::vector<std::string>& patterns) : model_(model) {
  std::string what;
  for (const auto& p : patterns) what += " '" + p + "'";
  select(
      [&](const std::string& name) {
        for (const auto& p : patterns)
          if (nn::name_matches(p, name)) return true;
        return false;
      },
      "the patterns" + what);
}

LinearizedModel::LinearizedModel(nn::Module& model, const ExactNames& names) : model_(model) {
  std::set<std::string> wanted(names.names.begin(), names.names.end());
  select([&](const std::string& name) { return wanted.count(name) > 0; }, "the given names");
  if (names_.size() != wanted.size())
    throw std::invalid_argument("[LinearizedModel] " + std::to_string(wanted.size() - names_.size()) +
                                " of the given names are not parameters of the model");
}

void LinearizedModel::select(const std::function<bool(const std::string&)>& selected, const std::string& what) {
  for (auto& e : model_.named_parameters()) {
    if (!selected(e.name)) continue;
    names_.push_back(e.name);
    slots_.push_back(e.tensor);
    phi0_.push_back(kernels::copy(*e.tensor));
    Tensor phi = kernels::copy(*e.tensor);
    phi.set_requires_grad(true);
    phi_.push_back(phi);
    e.tensor->set_requires_grad(false);   // the module keeps phi0; only phi trains
  }
  if (names_.empty()) throw std::invalid_argument("[LinearizedModel] no parameter matches " + what);
}

Tensor LinearizedModel::operator()(const std::function<Tensor()>& forward) {
  return linearized_call(forward, slots_, phi0_, phi_);
}

StateDict LinearizedModel::phi() const {
  StateDict sd;
  for (size_t i = 0; i < names_.size(); ++i) sd.insert(names_[i], kernels::copy(phi_[i]));
  return sd;
}

StateDict LinearizedModel::phi0() const {
  StateDict sd;
  for (size_t i = 0; i < names_.size(); ++i) sd.insert(names_[i], kernels::copy(phi0_[i]));
  return sd;
}

void LinearizedModel::set_phi(const StateDict& values) {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (!values.contains(names_[i]))
      throw std::invalid_argument("[LinearizedModel::set_phi] missing '" + names_[i] + "'");
    const Tensor& v = values.at(names_[i]);
    if (v.shape() != phi_[i].shape())
      throw std::invalid_argument("[LinearizedModel::set_phi] '" + names_[i] + "' is " + v.describe() + ", expected " +
                                  phi_[i].describe());
    kernels::copy_into(phi_[i], kernels::cast(v, phi_[i].dtype()));
  }
  if (values.size() != names_.size())
    throw std::invalid_argument("[LinearizedModel::set_phi] " + std::to_string(values.size()) + " tensors given for " +
                                std::to_string(names_.size()) + " linearized parameters");
}

int64_t LinearizedModel::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& p : phi_) n += p.numel();
  return n;
}

}  // namespace linfuse::peft

// ---- gradient check of the linearized_call primitive (registered next to it) ----
namespace linfuse::peft {
namespace {

struct CheckNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::LayerNorm> norm;
  CheckNet() {
    Generator g(17);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 4, true, g, DType::F64));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(4, 1e-5, DType::F64));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(4, 2, false, g, DType::F64));
  }
  Tensor forward(const Tensor& x) { return fc2->forward(tanh(norm->forward(fc1->forward(x)))); }
};

const bool linearized_call_checked = register_gradcheck_case(
    {"linearized_call[fc-norm-tanh-fc in fc1, fc2]",
     [](Generator& g) {
       return Tensors{g.normal({4, 3}, 0, 0.5, DType::F64), g.normal({4}, 0, 0.5, DType::F64),
                      g.normal({2, 4}, 0, 0.5, DType::F64)};
     },
     [](const Tensors& phi) {
       static auto net = std::make_shared<CheckNet>();
       static Tensor x = Generator(5).normal({5, 3}, 0, 1, DType::F64);
       std::vector<Tensor*> slots{&net->fc1->weight, &net->fc1->bias, &net->fc2->weight};
       std::vector<Tensor> phi0{kernels::copy(net->fc1->weight), kernels::copy(net->fc1->bias), kernels::copy(net->fc2->weight)};
       return linearized_call([&] { return net->forward(x); }, slots, phi0, phi);
     }});

}  // namespace
}  // namespace linfuse::peft
