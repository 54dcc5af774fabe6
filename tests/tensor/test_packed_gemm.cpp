// linfuse's packed float32 GEMM (tensor/packed_gemm.h), called directly and through matmul / addmm: against a
// float64 product on shapes off the 6 x 16 register tile and the depth blocks, every transposition, strided
// leading dimensions, alpha and beta = 1, and the same bits with 1 and 2 threads.
#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

#include "../helpers.h"
#include "tensor/kernels.h"
#include "tensor/kernel_isa.h"
#include "tensor/packed_gemm.h"
#include "tensor/random.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::bit_equal;
using linfuse::testing::relative_error;

namespace {

struct Product {
  int64_t m, n, k;
  bool ta, tb;
  int64_t pad;   // extra elements on every leading dimension (strided views)
};

// The operands of `product` with random Gaussian entries, and C's starting values; op(A)(i, p) is
// a[i lda + p] or a[p lda + i] when ta, op(B) likewise.
struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;
};

Operands random_operands(const Product& pr, Generator& gen) {
  Operands o;
  o.lda = (pr.ta ? pr.m : pr.k) + pr.pad;
  o.ldb = (pr.tb ? pr.k : pr.n) + pr.pad;
  o.ldc = pr.n + pr.pad;
  o.a = gen.normal({(pr.ta ? pr.k : pr.m) * o.lda}).to_vector<float>();
  o.b = gen.normal({(pr.tb ? pr.n : pr.k) * o.ldb}).to_vector<float>();
  o.c = gen.normal({pr.m * o.ldc}).to_vector<float>();
  return o;
}

// alpha op(A) op(B) + beta C in float64, on C's (m x n) block only.
std::vector<double> reference(const Product& pr, const Operands& o, double alpha, double beta) {
  std::vector<double> out(size_t(pr.m * pr.n));
  for (int64_t i = 0; i < pr.m; ++i)
    for (int64_t j = 0; j < pr.n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < pr.k; ++p)
        sum += double(pr.ta ? o.a[p * o.lda + i] : o.a[i * o.lda + p]) * double(pr.tb ? o.b[j * o.ldb + p] : o.b[p * o.ldb + j]);
      out[i * pr.n + j] = alpha * sum + beta * double(o.c[i * o.ldc + j]);
    }
  return out;
}

std::vector<float> run_packed(const Product& pr, const Operands& o, float alpha, float beta) {
  std::vector<float> c = o.c;
  kernels::packed_sgemm(pr.ta, pr.tb, pr.m, pr.n, pr.k, o.a.data(), o.lda, o.b.data(), o.ldb, c.data(), o.ldc, alpha, beta);
  return c;
}

}  // namespace

TEST_CASE("the packed float32 GEMM matches float64 off the tiles, in every layout, and leaves C's padding alone", "[tensor][matmul]") {
  Generator gen(23);
  // Odd sizes around the 6 x 16 register tile, k = 1, k past one depth block (256) and not a multiple of it,
  // m and n small enough for the tile grid to fall back to one tile, and the workload's shapes at a smaller batch.
  std::vector<Product> products;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [m, n, k] : {std::tuple{1, 1, 1}, std::tuple{7, 17, 1}, std::tuple{13, 31, 5}, std::tuple{97, 45, 300},
                             std::tuple{200, 130, 513}, std::tuple{320, 128, 128}, std::tuple{128, 64, 700}})
        for (int64_t pad : {0, 3}) products.push_back({m, n, k, ta, tb, pad});
  for (const Product& pr : products) {
    CAPTURE(pr.m, pr.n, pr.k, pr.ta, pr.tb, pr.pad);
    Operands o = random_operands(pr, gen);
    for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{1.0f, 1.0f}, std::pair{-0.5f, 1.0f}, std::pair{0.25f, 0.0f}}) {
      CAPTURE(alpha, beta);
      std::vector<float> c = run_packed(pr, o, alpha, beta);
      std::vector<double> expected = reference(pr, o, alpha, beta);
      double err = 0, scale = 1e-30;
      for (int64_t i = 0; i < pr.m; ++i)
        for (int64_t j = 0; j < pr.n; ++j) {
          err = std::max(err, std::abs(double(c[i * o.ldc + j]) - expected[i * pr.n + j]));
          scale = std::max(scale, std::abs(expected[i * pr.n + j]));
        }
      CHECK(err / scale < 1e-5);
      bool padding_kept = true;
      for (int64_t i = 0; i < pr.m; ++i)
        for (int64_t j = pr.n; j < o.ldc; ++j) padding_kept = padding_kept && c[i * o.ldc + j] == o.c[i * o.ldc + j];
      CHECK(padding_kept);
    }
  }
}

TEST_CASE("the packed float32 GEMM gives the same bits with 1 and 2 threads", "[tensor][matmul][threads]") {
  Generator gen(29);
  for (Product pr : {Product{3200, 128, 128, false, true, 0}, Product{517, 200, 300, false, false, 1},
                     Product{128, 128, 3200, true, false, 0}, Product{250, 70, 600, true, true, 2}}) {
    CAPTURE(pr.m, pr.n, pr.k, pr.ta, pr.tb);
    Operands o = random_operands(pr, gen);
    set_num_threads(1);
    std::vector<float> one = run_packed(pr, o, 1.0f, 1.0f);
    set_num_threads(2);
    std::vector<float> two = run_packed(pr, o, 1.0f, 1.0f);
    CHECK(one == two);   // exact: float == on every element (no NaN here)
  }
}

TEST_CASE("matmul and addmm on the workload's layer shapes match float64 and give the same bits with 1 and 2 threads", "[tensor][matmul][threads]") {
  Generator gen(31);
  auto f64 = [](const Tensor& t) { return kernels::cast(t, DType::F64); };
  // x W^T, g W and g^T x of a linear layer 128 -> 192 over 640 rows (a batch of the reference ViT's tokens).
  const int64_t rows = 640, in = 128, out = 192;
  Tensor x = gen.normal({rows, in}), w = gen.normal({out, in}), g = gen.normal({rows, out});
  struct Case {
    Tensor a, b;
  };
  for (const Case& c : {Case{x, kernels::permute(w, {1, 0})}, Case{g, w}, Case{kernels::permute(g, {1, 0}), x}}) {
    CAPTURE(c.a.describe(), c.b.describe());
    Tensor bias = gen.normal({c.b.size(1)});
    set_num_threads(1);
    Tensor one = kernels::matmul(c.a, c.b), one_acc = kernels::addmm(bias, c.a, c.b, 0.5);
    set_num_threads(2);
    Tensor two = kernels::matmul(c.a, c.b), two_acc = kernels::addmm(bias, c.a, c.b, 0.5);
    CHECK(relative_error(one, kernels::matmul(f64(c.a), f64(c.b))) < 1e-5);
    CHECK(relative_error(one_acc, kernels::addmm(f64(bias), f64(c.a), f64(c.b), 0.5)) < 1e-5);
    CHECK(bit_equal(one, two));
    CHECK(bit_equal(one_acc, two_acc));
  }
}

TEST_CASE("LoRA's rank-8 products and the patch embedding (k = 8, 16) match float64 and give the same bits with 1 and 2 threads", "[tensor][matmul][threads]") {
  Generator gen(41);
  auto f64 = [](const Tensor& t) { return kernels::cast(t, DType::F64); };
  // The reference workload's 3200 token rows (over 2^21 multiply-adds: the packed kernel's size): s B (A x)
  // accumulated onto the base output (B^T a transposed view), (g B) A, and x W^T + b with k = 16.
  const int64_t rows = 3200, rank = 8;
  Tensor ax = gen.normal({rows, rank}), b = gen.normal({128, rank}), base = gen.normal({rows, 128});
  Tensor gb = gen.normal({rows, rank}), a = gen.normal({rank, 512});
  Tensor patches = gen.normal({rows, 16}), w = gen.normal({128, 16}), bias = gen.normal({128});
  Tensor bt = kernels::permute(b, {1, 0}), wt = kernels::permute(w, {1, 0});
  set_num_threads(1);
  Tensor up1 = kernels::addmm(base, ax, bt, 2.0), dx1 = kernels::matmul(gb, a);
  Tensor emb1 = kernels::addmm(bias, patches, wt, 1.0);
  set_num_threads(2);
  Tensor up2 = kernels::addmm(base, ax, bt, 2.0), dx2 = kernels::matmul(gb, a);
  Tensor emb2 = kernels::addmm(bias, patches, wt, 1.0);
  CHECK(relative_error(up1, kernels::addmm(f64(base), f64(ax), f64(bt), 2.0)) < 1e-5);
  CHECK(relative_error(dx1, kernels::matmul(f64(gb), f64(a))) < 1e-5);
  CHECK(relative_error(emb1, kernels::addmm(f64(bias), f64(patches), f64(wt), 1.0)) < 1e-5);
  CHECK(bit_equal(up1, up2));
  CHECK(bit_equal(dx1, dx2));
  CHECK(bit_equal(emb1, emb2));
}

TEST_CASE("attention's batched products (C 32 wide) match float64 and give the same bits with 1 and 2 threads", "[tensor][matmul][threads]") {
  Generator gen(37);
  auto f64 = [](const Tensor& t) { return kernels::cast(t, DType::F64); };
  // (B, H, T, d) heads split from (B, T, H d) by a transpose, as the attention layer makes them: P v, dS k
  // (A in place) and P^T dO, dS^T q (A transposed), over 5 x 4 items of 50 tokens, head size 32.
  const int64_t batch = 5, heads = 4, tokens = 50, head = 32;
  Tensor v = kernels::permute(gen.normal({batch, tokens, heads, head}), {0, 2, 1, 3});
  Tensor p = gen.normal({batch, heads, tokens, tokens});
  for (const Tensor& a : {p, kernels::permute(p, {0, 1, 3, 2})}) {
    CAPTURE(a.describe());
    set_num_threads(1);
    Tensor one = kernels::matmul(a, v);
    set_num_threads(2);
    Tensor two = kernels::matmul(a, v);
    CHECK(relative_error(one, kernels::matmul(f64(a), f64(v))) < 1e-5);
    CHECK(bit_equal(one, two));
  }
}

TEST_CASE("the packed GEMM's AVX-512 path gives the AVX2 path's bits on every shape and layout", "[tensor][matmul][isa]") {
  if (!testing::can_compare_kernel_paths("the packed GEMM's AVX-512 path")) return;
  Generator gen(43);
  // Odd sizes around both register tiles (6 x 16 and 12 x 32), one and two panels left in a tile, k across the
  // depth blocks, strided leading dimensions, and the workload's shapes.
  std::vector<Product> products;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [m, n, k] : {std::tuple{1, 1, 1}, std::tuple{13, 17, 5}, std::tuple{25, 33, 7}, std::tuple{97, 45, 300},
                             std::tuple{200, 130, 513}, std::tuple{320, 128, 128}, std::tuple{128, 64, 700},
                             std::tuple{3200, 128, 8}, std::tuple{600, 512, 128}, std::tuple{50, 32, 50}})
        for (int64_t pad : {0, 3}) products.push_back({m, n, k, ta, tb, pad});
  for (const Product& pr : products) {
    CAPTURE(pr.m, pr.n, pr.k, pr.ta, pr.tb, pr.pad);
    Operands o = random_operands(pr, gen);
    for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{-0.5f, 1.0f}}) {
      CAPTURE(alpha, beta);
      kernels::set_kernel_isa(kernels::KernelIsa::avx2);
      std::vector<float> narrow = run_packed(pr, o, alpha, beta);
      kernels::set_kernel_isa(kernels::KernelIsa::avx512);
      std::vector<float> wide = run_packed(pr, o, alpha, beta);
      CHECK(narrow == wide);   // exact, padding included
    }
  }
  kernels::reset_kernel_isa();
}

TEST_CASE("the packed GEMM's bias on the way out gives the bits of filling C with the bias and adding the product", "[tensor][matmul][isa]") {
  // packed_sgemm_bias(bias) against C filled with copies of the bias then packed_sgemm with beta = 1 (what addmm
  // did before the bias was fused), on both paths of the kernel where the CPU has both, and through addmm.
  Generator gen(47);
  const std::vector<kernels::KernelIsa> paths = testing::kernel_paths();
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, std::tuple{13, 17, 5}, std::tuple{25, 33, 7}, std::tuple{97, 45, 300},
                         std::tuple{200, 130, 513}, std::tuple{3200, 128, 16}, std::tuple{600, 512, 128}})
    for (bool tb : {false, true})
      for (int64_t pad : {0, 3}) {
        Product pr{m, n, k, false, tb, pad};
        CAPTURE(m, n, k, tb, pad);
        Operands o = random_operands(pr, gen);
        std::vector<float> bias = gen.normal({n}).to_vector<float>();
        for (kernels::KernelIsa isa : paths) {
          CAPTURE(kernels::kernel_isa_name(isa));
          kernels::set_kernel_isa(isa);
          std::vector<float> filled = o.c, fused = o.c;
          for (int64_t i = 0; i < m; ++i) std::copy(bias.begin(), bias.end(), filled.begin() + i * o.ldc);
          kernels::packed_sgemm(false, tb, m, n, k, o.a.data(), o.lda, o.b.data(), o.ldb, filled.data(), o.ldc, 0.5f, 1.0f);
          kernels::packed_sgemm_bias(false, tb, m, n, k, o.a.data(), o.lda, o.b.data(), o.ldb, bias.data(), fused.data(),
                                     o.ldc, 0.5f);
          CHECK(filled == fused);   // exact, padding included (left alone by both)
        }
      }
  // Through addmm, on the linear layer's shape where the packed kernel runs the product.
  Tensor x = gen.normal({3200, 128}), w = gen.normal({512, 128}), b = gen.normal({512});
  Tensor wt = kernels::permute(w, {1, 0});
  Tensor filled = kernels::copy(kernels::broadcast_to(b, {3200, 512}));
  kernels::addmm_into(filled, x, wt, 1.0);
  CHECK(bit_equal(kernels::addmm(b, x, wt, 1.0), filled));
  kernels::reset_kernel_isa();
}

TEST_CASE("two products of one A side by side (a LoRA linear's x W^T and x A^T) give the bits of the two apart", "[tensor][matmul][isa]") {
  // kernels::matmul_pair against addmm / matmul apart, on both paths of the kernel where the CPU has both: the
  // forward's x W^T + b with x A^T (both B transposed views), the backward's g W with g B (both B in place), ranks
  // 8 and 16, row counts off the register tiles, and a first width off the panels (computed apart, the same).
  Generator gen(59);
  const std::vector<kernels::KernelIsa> paths = testing::kernel_paths();
  for (auto [m, n1, n2, k] : {std::tuple{3200, 128, 8, 128}, std::tuple{3200, 512, 8, 128}, std::tuple{3200, 128, 8, 512},
                              std::tuple{997, 128, 16, 128}, std::tuple{1001, 144, 8, 96}, std::tuple{640, 100, 8, 128}})
    for (bool transposed : {true, false})
      for (bool with_bias : {true, false}) {
        CAPTURE(m, n1, n2, k, transposed, with_bias);
        Tensor a = gen.normal({m, k});
        Tensor b1 = transposed ? kernels::permute(gen.normal({n1, k}), {1, 0}) : gen.normal({k, n1});
        Tensor b2 = transposed ? kernels::permute(gen.normal({n2, k}), {1, 0}) : gen.normal({k, n2});
        Tensor bias = with_bias ? gen.normal({n1}) : Tensor();
        for (kernels::KernelIsa isa : paths) {
          CAPTURE(kernels::kernel_isa_name(isa));
          kernels::set_kernel_isa(isa);
          Tensor out1, out2;
          kernels::matmul_pair(a, b1, bias, b2, out1, out2);
          CHECK(bit_equal(out1, with_bias ? kernels::addmm(bias, a, b1, 1.0) : kernels::matmul(a, b1)));
          CHECK(bit_equal(out2, kernels::matmul(a, b2)));
          // with a finish on the first product (a LoRA linear's activation or residual): it sees every element of
          // out1 exactly once, final, and none of out2 (the blocks' columns are out1's, the tile's other ones left out)
          Tensor counts = Tensor::zeros({m, n1}, DType::F32);
          const kernels::BlockFinish finish = [&](float* block, int64_t ld, int64_t row, int64_t col, int64_t rows, int64_t cols) {
            REQUIRE(col + cols <= n1);
            for (int64_t i = 0; i < rows; ++i)
              for (int64_t j = 0; j < cols; ++j) {
                block[i * ld + j] = 2.0f * block[i * ld + j] + 1.0f;
                counts.data<float>()[(row + i) * n1 + col + j] += 1.0f;
              }
          };
          Tensor finished1, finished2;
          kernels::matmul_pair(a, b1, bias, b2, finished1, finished2, &finish);
          Tensor expected1 = kernels::copy(out1);
          for (int64_t i = 0; i < expected1.numel(); ++i) expected1.data<float>()[i] = 2.0f * expected1.data<float>()[i] + 1.0f;
          CHECK(bit_equal(finished1, expected1));
          CHECK(bit_equal(finished2, out2));
          CHECK(bit_equal(counts, Tensor::ones({m, n1}, DType::F32)));
        }
      }
  kernels::reset_kernel_isa();
}
