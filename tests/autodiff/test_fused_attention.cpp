// The fused attention primitive against the composed ops it replaces, on float32 (the SIMD path the models run;
// the float64 path is gradient-checked in autodiff/gradcheck_cases.cpp), and its determinism across thread counts.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "../helpers.h"
#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tensor/kernel_isa.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;
using linfuse::testing::relative_error;

namespace {

// The reference: separate ops, each a node of the tape (nn::composed_attention, which this library cannot see).
Tensor composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  Tensor scores = mul(matmul(q, transpose(k, -1, -2)), scale);
  return matmul(softmax(mask.defined() ? add(scores, mask) : scores, -1), v);
}

// CLIP text's additive mask (B, 1, T, T): causal, and batch item b pads its last b keys.
Tensor causal_padding_mask(int64_t batch, int64_t length) {
  Tensor mask = Tensor::zeros({batch, 1, length, length}, DType::F32);
  float* m = mask.data<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < length; ++i)
      for (int64_t j = 0; j < length; ++j)
        if (j > i || j >= length - b) m[(b * length + i) * length + j] = -std::numeric_limits<float>::infinity();
  return mask;
}

struct Shapes {
  int64_t batch, heads, length, head_dim;
};

// q, k, v as split_heads views of (B, T, H*D) projections, as the models pass them.
Tensors heads_of_projections(const Shapes& s, uint64_t seed) {
  Generator g(seed);
  Tensors out;
  for (int i = 0; i < 3; ++i) {
    Tensor x = g.normal({s.batch, s.length, s.heads * s.head_dim});
    out.push_back(transpose(reshape(x, {s.batch, s.length, s.heads, s.head_dim}), 1, 2));
  }
  return out;
}

struct Results {
  Tensor out, dq, dk, dv, tangent;
};

Results run(const Tensors& qkv, const Tensor& mask, double scale, bool fused, uint64_t seed) {
  auto f = [&](const Tensors& x) {
    return fused ? fused_attention(x[0], x[1], x[2], mask, scale) : composed(x[0], x[1], x[2], mask, scale);
  };
  Tensors leaves;
  for (const Tensor& t : qkv) leaves.push_back(t.detach().set_requires_grad(true));
  Results r;
  r.out = f(leaves);
  Generator g(seed);
  Tensors grads = grad({r.out}, leaves, {g.normal(r.out.shape())});
  r.dq = grads[0], r.dk = grads[1], r.dv = grads[2];
  Tensors tangents;
  for (const Tensor& t : qkv) tangents.push_back(g.normal(t.shape()));
  // Without gradient recording, as the linearized models' training runs it: the fused rule's own kernel.
  NoGradGuard no_grad;
  r.tangent = jvp(f, {qkv[0].detach(), qkv[1].detach(), qkv[2].detach()}, tangents).second;
  return r;
}

}  // namespace

TEST_CASE("fused attention equals the composed ops in float32: output, VJP and JVP", "[autodiff][attention]") {
  struct Case {
    const char* name;
    Shapes shapes;
    bool masked;
  };
  for (const Case& c : {Case{"reference workload heads (50 x 32)", {3, 4, 50, 32}, false},
                        Case{"CLIP text: causal and padding mask", {3, 2, 16, 32}, true},
                        Case{"head dim not a multiple of 8, odd length", {2, 3, 17, 12}, true}}) {
    DYNAMIC_SECTION(c.name) {
      Tensors qkv = heads_of_projections(c.shapes, 7);
      Tensor mask = c.masked ? causal_padding_mask(c.shapes.batch, c.shapes.length) : Tensor();
      double scale = 1.0 / std::sqrt(double(c.shapes.head_dim));
      Results fused = run(qkv, mask, scale, true, 11), reference = run(qkv, mask, scale, false, 11);
      INFO("out " << relative_error(fused.out, reference.out) << " dq " << relative_error(fused.dq, reference.dq)
                  << " dk " << relative_error(fused.dk, reference.dk) << " dv " << relative_error(fused.dv, reference.dv)
                  << " jvp " << relative_error(fused.tangent, reference.tangent));
      // float32 sums of 12 to 50 terms in another order than OpenBLAS's: a few units in the last place.
      CHECK(relative_error(fused.out, reference.out) < 2e-6);
      CHECK(relative_error(fused.dq, reference.dq) < 2e-6);
      CHECK(relative_error(fused.dk, reference.dk) < 2e-6);
      CHECK(relative_error(fused.dv, reference.dv) < 2e-6);
      CHECK(relative_error(fused.tangent, reference.tangent) < 2e-6);
    }
  }
}

TEST_CASE("fused attention's float32 VJP and JVP are each other's transpose (adjoint identity)", "[autodiff][attention]") {
  Tensors qkv = heads_of_projections({2, 4, 50, 32}, 3);
  Tensor mask = causal_padding_mask(2, 50);
  Results r = run(qkv, mask, 0.25, true, 5);
  // run() drew the cotangent u first, then the tangents v, from Generator(5): draw them again.
  Generator g(5);
  Tensor u = g.normal(r.out.shape());
  Tensors v;
  for (const Tensor& t : qkv) v.push_back(g.normal(t.shape()));
  auto dot = [](const Tensor& a, const Tensor& b) { return sum(mul(cast(a, DType::F64), cast(b, DType::F64))).item(); };
  double u_jv = dot(u, r.tangent), jtu_v = dot(r.dq, v[0]) + dot(r.dk, v[1]) + dot(r.dv, v[2]);
  INFO("<u, J v> = " << u_jv << ", <J^T u, v> = " << jtu_v);
  CHECK(std::abs(u_jv - jtu_v) < 1e-5 * (std::abs(u_jv) + std::abs(jtu_v)));
}

TEST_CASE("fused attention gives the same bits with 1 and 2 threads", "[autodiff][attention][threads]") {
  Tensors qkv = heads_of_projections({4, 4, 50, 32}, 9);
  Tensor mask = causal_padding_mask(4, 50);
  int before = num_threads();
  set_num_threads(1);
  Results one = run(qkv, mask, 0.2, true, 13);
  set_num_threads(2);
  Results two = run(qkv, mask, 0.2, true, 13);
  set_num_threads(before);
  CHECK(bit_equal(one.out, two.out));
  CHECK(bit_equal(one.dq, two.dq));
  CHECK(bit_equal(one.dk, two.dk));
  CHECK(bit_equal(one.dv, two.dv));
  CHECK(bit_equal(one.tangent, two.tangent));
}

TEST_CASE("fused attention's AVX-512 path gives the AVX2 path's bits: output, VJP and JVP", "[autodiff][attention][isa]") {
  if (!testing::can_compare_kernel_paths("the attention's AVX-512 path")) return;
  // The reference heads (50 keys: 32 columns on wide tiles, 24 on AVX2 ones), fewer keys than one wide block, head
  // dims of two wide blocks and of one block and a half, with and without CLIP text's mask.
  for (Shapes shape : {Shapes{4, 4, 50, 32}, Shapes{2, 3, 17, 12}, Shapes{2, 2, 50, 64}, Shapes{1, 2, 40, 48}}) {
    for (bool masked : {false, true}) {
      CAPTURE(shape.batch, shape.heads, shape.length, shape.head_dim, masked);
      Tensors qkv = heads_of_projections(shape, 21);
      Tensor mask = masked ? causal_padding_mask(shape.batch, shape.length) : Tensor();
      const double scale = 1.0 / std::sqrt(double(shape.head_dim));
      kernels::set_kernel_isa(kernels::KernelIsa::avx2);
      Results narrow = run(qkv, mask, scale, true, 5);
      kernels::set_kernel_isa(kernels::KernelIsa::avx512);
      Results wide = run(qkv, mask, scale, true, 5);
      CHECK(bit_equal(narrow.out, wide.out));
      CHECK(bit_equal(narrow.dq, wide.dq));
      CHECK(bit_equal(narrow.dk, wide.dk));
      CHECK(bit_equal(narrow.dv, wide.dv));
      CHECK(bit_equal(narrow.tangent, wide.tangent));
    }
  }
  kernels::reset_kernel_isa();
}

TEST_CASE("fused attention lays 4-D results out as split_heads does, so merging heads is a view",
          "[autodiff][attention]") {
  Tensors qkv = heads_of_projections({2, 4, 10, 8}, 1);
  Tensor out = fused_attention(qkv[0], qkv[1], qkv[2], Tensor(), 0.5);
  CHECK(out.shape() == Shape{2, 4, 10, 8});
  CHECK(transpose(out, 1, 2).is_contiguous());   // (B, T, H, D) in memory
}

namespace {

// T5's self-attention bias: a learned position bias (1, H, Tq, Tk) plus the padding mask (B, 1, 1, Tk), batch item
// b padding its last b keys. Gradients and tangents reach the position bias through the sum.
struct BiasResults {
  Tensor out, dq, dk, dv, d_position, tangent;
};

BiasResults run_with_learned_bias(const Tensors& qkv, const Tensor& position, bool fused, uint64_t seed) {
  const int64_t batch = qkv[0].size(0), tk = qkv[1].size(2);
  Tensor padding = Tensor::zeros({batch, 1, 1, tk}, DType::F32);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = tk - b; j < tk; ++j) padding.data<float>()[b * tk + j] = -std::numeric_limits<float>::infinity();
  auto f = [&](const Tensors& x) {
    Tensor bias = add(x[3], padding);   // (B, H, Tq, Tk)
    return fused ? fused_attention(x[0], x[1], x[2], bias, 1.0) : composed(x[0], x[1], x[2], bias, 1.0);
  };
  Tensors leaves;
  for (const Tensor& t : qkv) leaves.push_back(t.detach().set_requires_grad(true));
  leaves.push_back(position.detach().set_requires_grad(true));
  BiasResults r;
  r.out = f(leaves);
  Generator g(seed);
  Tensors grads = grad({r.out}, leaves, {g.normal(r.out.shape())});
  r.dq = grads[0], r.dk = grads[1], r.dv = grads[2], r.d_position = grads[3];
  Tensors primals, tangents;
  for (const Tensor& t : leaves) primals.push_back(t.detach()), tangents.push_back(g.normal(t.shape()));
  NoGradGuard no_grad;
  r.tangent = jvp(f, primals, tangents).second;
  return r;
}

}  // namespace

TEST_CASE("fused attention with a learned bias equals the composed ops: output, VJP and JVP",
          "[autodiff][attention]") {
  // Self-attention (T5's 4 heads of 16 over 20 tokens) and cross-attention's shape (3 queries, 20 keys).
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{20, 20}, {3, 20}}) {
    CAPTURE(tq, tk);
    Generator g(31);
    Tensors qkv = {g.normal({3, 4, tq, 16}), g.normal({3, 4, tk, 16}), g.normal({3, 4, tk, 16})};
    Tensor position = g.normal({1, 4, tq, tk});
    BiasResults fused = run_with_learned_bias(qkv, position, true, 17), reference = run_with_learned_bias(qkv, position, false, 17);
    INFO("out " << relative_error(fused.out, reference.out) << " dq " << relative_error(fused.dq, reference.dq) << " dk "
                << relative_error(fused.dk, reference.dk) << " dv " << relative_error(fused.dv, reference.dv)
                << " d_position " << relative_error(fused.d_position, reference.d_position) << " jvp "
                << relative_error(fused.tangent, reference.tangent));
    REQUIRE(fused.d_position.shape() == position.shape());
    CHECK(relative_error(fused.out, reference.out) < 2e-6);
    CHECK(relative_error(fused.dq, reference.dq) < 2e-6);
    CHECK(relative_error(fused.dk, reference.dk) < 2e-6);
    CHECK(relative_error(fused.dv, reference.dv) < 2e-6);
    CHECK(relative_error(fused.d_position, reference.d_position) < 2e-6);
    CHECK(relative_error(fused.tangent, reference.tangent) < 2e-6);

    // The same bits with 1 and 2 threads.
    int before = num_threads();
    set_num_threads(1);
    BiasResults one = run_with_learned_bias(qkv, position, true, 17);
    set_num_threads(2);
    BiasResults two = run_with_learned_bias(qkv, position, true, 17);
    set_num_threads(before);
    CHECK(bit_equal(one.d_position, two.d_position));
    CHECK(bit_equal(one.dq, two.dq));
    CHECK(bit_equal(one.tangent, two.tangent));
  }
}

TEST_CASE("a learned bias leaves the constant mask's bits alone", "[autodiff][attention]") {
  // The bias's gradient comes from dS before the scale, which the rule applies last: q, k and v get the bits they get
  // with the same values as a constant mask.
  Tensors qkv = heads_of_projections({2, 2, 12, 8}, 4);
  Tensor mask = causal_padding_mask(2, 12);
  Results constant = run(qkv, mask, 0.35, true, 3);
  Tensor learned = mask.detach().set_requires_grad(true);
  Tensors leaves;
  for (const Tensor& t : qkv) leaves.push_back(t.detach().set_requires_grad(true));
  Tensor out = fused_attention(leaves[0], leaves[1], leaves[2], learned, 0.35);
  Generator g(3);
  Tensors grads = grad({out}, {leaves[0], leaves[1], leaves[2], learned}, {g.normal(out.shape())});
  CHECK(bit_equal(out, constant.out));
  CHECK(bit_equal(grads[0], constant.dq));
  CHECK(bit_equal(grads[1], constant.dk));
  CHECK(bit_equal(grads[2], constant.dv));
}
