// The fused attention primitive: softmax(scale q k^T + bias) v as one node of the tape.
#include "autodiff/rule_helpers.h"
#include "tensor/attention_kernel.h"

namespace linfuse {
using Tensors = std::vector<Tensor>;
using Wanted = std::vector<bool>;

namespace {

// Per (batch item, head): q (Tq, D), k (Tk, D), v (Tk, Dv), the bias M (Tq, Tk): a constant mask (-inf hides a
// key), or a learned bias (T5's relative position bias, masks added) whose derivatives are propagated.
//   S = scale q k^T + M,   P = softmax(S) along rows,   out = P v                                    (Tq, Dv)
//   vjp (g = d out, Tq x Dv):  dv = P^T g;  dP = g v^T;  dS = P (dP - rowsum(dP P));
//                              dq = scale dS k;  dk = scale dS^T q;  dM = dS (summed over M's broadcast dims)
//   jvp:  tS = scale (tq k^T + q tk^T) + tM;  tP = P (tS - rowsum(tS P));  t_out = tP v + P tv
// Saved for the rules: P alone (Tq x Tk per head; the composed ops kept the scores twice besides, before and after
// scaling). The rules recompute nothing: the products of the VJP need P and the inputs only. The fast path
// (fused()) runs the kernels of tensor/attention_kernel.h on the saved P; while a graph is recorded (higher-order
// derivatives) the same formulas run as ops, with P recomputed by ops so that its dependence on q and k is seen.
class FusedAttention : public Primitive {
  LINFUSE_PRIMITIVE("fused_attention")
 public:
  FusedAttention(double scale, bool has_mask, bool learned_bias)
      : scale_(scale), has_mask_(has_mask), learned_bias_(learned_bias) {}
  Tensor forward(const Tensors& in) override {
    return kernels::attention_forward(in[0], in[1], in[2], has_mask_ ? in[3] : Tensor(), scale_,
                                      rules_may_run(in) ? &probabilities_ : nullptr);
  }
  // a mask is a constant; a learned bias gets its derivatives
  bool differentiable_input(size_t i) const override { return i < 3 || learned_bias_; }
  bool fused() const { return !rules::recording() && probabilities_.defined(); }

  Tensors vjp(const Tensors& in, const Tensor&, const Tensor& g, const Wanted& w) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    const bool want_bias = learned_bias_ && w[3];
    Tensors out(in.size());
    if (fused()) {
      Tensor d_scores;   // dS before the scale, (..., Tq, Tk)
      kernels::attention_backward(q, k, v, probabilities_, g, scale_, w[0] ? &out[0] : nullptr, w[1] ? &out[1] : nullptr,
                                  w[2] ? &out[2] : nullptr, want_bias ? &d_scores : nullptr);
      if (want_bias) out[3] = sum_to(d_scores, in[3].shape());
      return out;
    }
    Tensor p = probabilities(in);
    if (w[2]) out[2] = matmul(transpose(p, -1, -2), g);
    if (w[0] || w[1] || want_bias) {
      Tensor dp = matmul(g, transpose(v, -1, -2));
      Tensor d_scores = mul(p, sub(dp, sum(mul(dp, p), {-1}, true)));
      if (want_bias) out[3] = sum_to(d_scores, in[3].shape());
      Tensor ds = mul(d_scores, scale_);
      if (w[0]) out[0] = matmul(ds, k);
      if (w[1]) out[1] = matmul(transpose(ds, -1, -2), q);
    }
    return out;
  }

  Tensor jvp(const Tensors& in, const Tensor&, const Tensors& t) override {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    const Tensor t_bias = learned_bias_ ? t[3] : Tensor();
    if (fused()) return kernels::attention_tangent(q, k, v, probabilities_, t[0], t[1], t[2], scale_, t_bias);
    Tensor p = probabilities(in);
    Tensor ts;
    if (t[0].defined()) ts = matmul(t[0], transpose(k, -1, -2));
    if (t[1].defined()) ts = rules::add_defined(ts, matmul(q, transpose(t[1], -1, -2)));
    if (ts.defined()) ts = mul(ts, scale_);
    ts = rules::add_defined(ts, t_bias);
    Tensor out;
    if (ts.defined()) out = matmul(mul(p, sub(ts, sum(mul(ts, p), {-1}, true))), v);
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
  bool rules_may_run(const Tensors& in) const {
    for (size_t i = 0; i < (learned_bias_ ? 4 : 3); ++i)
      if ((grad_enabled() && in[i].requires_grad()) || (DualLevel::active() && tangent_of(in[i]).defined())) return true;
    return false;
  }

  double scale_;
  bool has_mask_, learned_bias_;
  Tensor probabilities_;   // P (..., Tq, Tk), saved by forward
};

}  // namespace

Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  Tensors in{q, k, v};
  if (bias.defined()) in.push_back(bias);
  const bool learned = bias.defined() && (bias.requires_grad() || (DualLevel::active() && tangent_of(bias).defined()));
  return apply_new<FusedAttention>(in, scale, bias.defined(), learned);
}

}  // namespace linfuse
