// The fused attention primitive: softmax(scale q k^T + mask) v as one node of the tape.
#include "autodiff/rule_helpers.h"
#include "tensor/attention_kernel.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

// Per (batch item, head): q (Tq, D), k (Tk, D), v (Tk, Dv), the mask M (Tq, Tk) a constant.
//   S = scale q k^T + M,   P = softmax(S) along rows,   out = P v                                    (Tq, Dv)
//   vjp (g = d out, Tq x Dv):  dv = P^T g;  dP = g v^T;  dS = P (dP - rowsum(dP P));
//                              dq = scale dS k;  dk = scale dS^T q
//   jvp:  tS = scale (tq k^T + q tk^T);  tP = P (tS - rowsum(tS P));  t_out = tP v + P tv
// Saved for the rules: P alone (Tq x Tk per head; the composed ops kept the scores twice besides, before and after
// scaling). The rules recompute nothing: the products of the VJP need P and the inputs only. The fast path
// (fused()) runs the kernels of tensor/attention_kernel.h on the saved P; while a graph is recorded (higher-order
// derivatives) the same formulas run as ops, with P recomputed by ops so that its dependence on q and k is seen.
class FusedAttention : public Primitive {
  LINFUSE_PRIMITIVE("fused_attention")
 public:
  FusedAttention(double scale, bool has_mask) : scale_(scale), has_mask_(has_mask) {}
  Tensor forward(const Tensors& in) override {
    return kernels::attention_forward(in[0], in[1], in[2], has_mask_ ? in[3] : Tensor(), scale_,
                                      rules_may_run(in) ? &probabilities_ : nullptr);
  }
  bool differentiable_input(size_t i) const override { return i < 3; }   // the mask is a constant
  bool fused() const { return !rules::recording() && probabilities_.defined(); }

  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    Tensors out(in.size());
    if (fused()) {
      kernels::attention_backward(q, k, v, probabilities_, g, scale_, w[0] ? &out[0] : nullptr, w[1] ? &out[1] : nullptr,
                                  w[2] ? &out[2] : nullptr);
      return out;
    }
    Tensor p = probabilities(in);
    if (w[2]) out[2] = matmul(transpose(p, -1, -2), g);
    if (w[0] || w[1]) {
      Tensor dp = matmul(g, transpose(v, -1, -2));
      Tensor ds = mul(mul(p, sub(dp, sum(mul(dp, p), {-1}, true))), scale_);
      if (w[0]) out[0] = matmul(ds, k);
      if (w[1]) out[1] = matmul(transpose(ds, -1, -2), q);
    }
    return out;
  }

  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    if (fused()) return kernels::attention_tangent(q, k, v, probabilities_, t[0], t[1], t[2], scale_);
    Tensor p = probabilities(in);
    Tensor ts;
    if (t[0].defined()) ts = matmul(t[0], transpose(k, -1, -2));
    if (t[1].defined()) ts = rules::add_defined(ts, matmul(q, transpose(t[1], -1, -2)));
    Tensor out;
    if (ts.defined()) {
      ts = mul(ts, scale_);
      out = matmul(mul(p, sub(ts, sum(mul(ts, p), {-1}, true))), v);
    }
    if (t[2].defined()) out = rules::add_defined(out, matmul(p, t[2]));
    return out;
  }
  void release() override { probabilities_ = Tensor(); }

 private:
  // P by ops (differentiable), for the rules while a graph is recorded.
  Tensor probabilities(const Tensors& in) const {
    Tensor scores = mul(matmul(in[0], transpose(in[1], -1, -2)), scale_);
    return softmax(has_mask_ ? add(scores, in[3]) : scores, -1);
  }
  // Whether a rule can run on this node (it is recorded, or carries tangents): only then is P worth keeping.
  static bool rules_may_run(const Tensors& in) {
    for (size_t i = 0; i < 3; ++i)
      if ((grad_enabled() && in[i].requires_grad()) || (DualLevel::active() && tangent_of(in[i]).defined())) return true;
    return false;
  }

  double scale_;
  bool has_mask_;
  Tensor probabilities_;   // P (..., Tq, Tk), saved by forward
};

}  // namespace

Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  if (mask.defined() && (mask.requires_grad() || (DualLevel::active() && tangent_of(mask).defined())))
    throw std::invalid_argument("[fused_attention] the mask " + mask.describe() +
                                " carries a derivative, which this primitive does not propagate (the mask is a "
                                "constant); use nn::composed_attention for a learned bias");
  Tensors in{q, k, v};
  if (mask.defined()) in.push_back(mask);
  return apply_new<FusedAttention>(in, scale, mask.defined());
}

}  // namespace linfuse
