// Google Benchmark micro-benchmarks of the kernels that dominate the reference workload (DESIGN.md: ViT on
// 28x28 images, patch 4 -> 50 tokens, width 128, 4 heads, MLP 512, batch 64, LoRA r = 8): the GEMM shapes
// of its forward and backward (the linear layers' also with the caches flushed first, as in a training step), softmax,
// layer norm and its input-gradient rule, attention forward and forward+backward, a LoRA linear forward+backward, and
// the JVP of a linear layer. Threads: LINFUSE_THREADS (default: all cores).
// Built as `micro_bench` when libbenchmark-dev is found; `make bench` runs it before the end-to-end table.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "peft/lora.h"
#include "tensor/kernels.h"
#include "tensor/kernels_norm_grad.h"
#include "tensor/random.h"

using namespace linfuse;

namespace {

constexpr int64_t kB = 64, kT = 50, kD = 128, kH = 4, kMlp = 512, kRank = 8, kRows = kB * kT;

Tensor randn(const Shape& s, uint64_t seed = 0) { return Generator(seed).normal(s); }

// Counts FLOP/s for a GEMM (2 m n k per call).
void set_gemm_counters(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// C (m x n) = A (m x k) @ B (k x n), with A or B given as a transposed view when ta / tb (the backward's
// layouts: dX = G W, dW = G^T X).
void BM_Matmul(benchmark::State& state) {
  int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  bool ta = state.range(3) != 0, tb = state.range(4) != 0;
  Tensor a = ta ? kernels::permute(randn({k, m}, 1), {1, 0}) : randn({m, k}, 1);
  Tensor b = tb ? kernels::permute(randn({n, k}, 2), {1, 0}) : randn({k, n}, 2);
  for (auto _ : state) benchmark::DoNotOptimize(kernels::matmul(a, b));
  set_gemm_counters(state, 2.0 * m * n * k);
}
// The same with the caches flushed before each product (a 64 MB buffer written between iterations, not timed).
void BM_MatmulCold(benchmark::State& state) {
  int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = randn({m, k}, 1);
  Tensor b = kernels::permute(randn({n, k}, 2), {1, 0});
  std::vector<float> flush(size_t(16) << 20);
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < flush.size(); i += 16) flush[i] += 1.0f;
    benchmark::DoNotOptimize(flush.data());
    state.ResumeTiming();
    benchmark::DoNotOptimize(kernels::matmul(a, b));
  }
  set_gemm_counters(state, 2.0 * m * n * k);
}
BENCHMARK(BM_MatmulCold)->ArgNames({"m", "k", "n"})->Args({kRows, kD, kD})->Args({kRows, kMlp, kD})->Args({kRows, kD, kMlp})->Unit(benchmark::kMicrosecond);
// Rows are B*T = 3200 tokens. Linear layers: x W^T (tb), dX = g W, dW = g^T x (ta).
BENCHMARK(BM_Matmul)
    ->ArgNames({"m", "k", "n", "ta", "tb"})
    ->Args({kRows, kD, kD, 0, 1})       // q/k/v/o forward
    ->Args({kRows, kD, kD, 0, 0})       // q/k/v/o input gradient
    ->Args({kD, kRows, kD, 1, 0})       // q/k/v/o weight gradient
    ->Args({kRows, kD, kMlp, 0, 1})     // fc1 forward
    ->Args({kRows, kMlp, kD, 0, 1})     // fc2 forward
    ->Args({kMlp, kRows, kD, 1, 0})     // fc1 weight gradient
    ->Args({kRows, kD, kRank, 0, 1})    // LoRA A x
    ->Args({kRows, kD, 3 * kD, 0, 1})   // q, k, v as one product (issue 20, item 4): forward
    ->Args({kRows, 3 * kD, kD, 0, 0})   //   its input gradient
    ->Args({3 * kD, kRows, kD, 1, 0})   //   its weight gradient
    ->Args({kRows, kRank, kD, 0, 1})    // LoRA B (A x)
    ->Args({kRows, kRank, kMlp, 0, 0})  // LoRA input gradient through A (fc2: (g B) A)
    ->Args({kRank, kRows, kD, 1, 0})    // LoRA factor gradient (g B)^T x (A's, for q/k/v/o/fc1)
    ->Args({kRank, kRows, kMlp, 1, 0})  //   and fc2's, x 512 wide
    ->Args({kD, kRows, kRank, 1, 0})    // LoRA factor gradient g^T (x A^T) (B's, for q/k/v/o/fc2)
    ->Args({kMlp, kRows, kRank, 1, 0})  //   and fc1's, g 512 wide
    ->Args({kB * (kT - 1), 16, kD, 0, 1})   // patch embedding forward (k = 4 x 4 pixels)
    ->Args({1024, 1024, 1024, 0, 0})    // large square (the machine's limit)
    ->Unit(benchmark::kMicrosecond);

// Attention's batched products: (B*H) x [T x d] @ [d x T] and [T x T] @ [T x d].
void BM_AttentionBmm(benchmark::State& state) {
  int64_t d = kD / kH;
  Tensor q = randn({kB, kH, kT, d}, 1), k = randn({kB, kH, kT, d}, 2), p = randn({kB, kH, kT, kT}, 3);
  Tensor kt = kernels::permute(k, {0, 1, 3, 2});
  bool scores = state.range(0) == 0;
  for (auto _ : state) benchmark::DoNotOptimize(scores ? kernels::matmul(q, kt) : kernels::matmul(p, k));
  set_gemm_counters(state, 2.0 * kB * kH * kT * kT * d);
}
BENCHMARK(BM_AttentionBmm)->ArgName("weighted")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_Softmax(benchmark::State& state) {
  Tensor s = randn({kB, kH, kT, kT});
  for (auto _ : state) benchmark::DoNotOptimize(kernels::softmax_last(s));
  state.SetBytesProcessed(int64_t(state.iterations()) * s.numel() * 4 * 2);
}
BENCHMARK(BM_Softmax)->Unit(benchmark::kMicrosecond);

void BM_LayerNorm(benchmark::State& state) {
  Tensor x = randn({kB, kT, kD}), gamma = randn({kD}, 1), beta = randn({kD}, 2);
  Tensor y, mean, rstd;
  for (auto _ : state) {
    kernels::layer_norm(x, gamma, beta, 1e-5, y, mean, rstd);
    benchmark::DoNotOptimize(y);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * x.numel() * 4 * 2);
}
BENCHMARK(BM_LayerNorm)->Unit(benchmark::kMicrosecond);

// Layer norm's input-gradient rule alone (VJP, and JVP with jvp = 1), on saved statistics.
void BM_LayerNormDx(benchmark::State& state) {
  Tensor x = randn({kB, kT, kD}), gamma = randn({kD}, 1), beta = randn({kD}, 2), v = randn({kB, kT, kD}, 3);
  Tensor y, mean, rstd;
  kernels::layer_norm(x, gamma, beta, 1e-5, y, mean, rstd);
  for (auto _ : state) benchmark::DoNotOptimize(kernels::layer_norm_dx(x, mean, rstd, gamma, v, state.range(0) != 0));
  state.SetBytesProcessed(int64_t(state.iterations()) * x.numel() * 4 * 3);
}
BENCHMARK(BM_LayerNormDx)->ArgName("jvp")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// The differentiable layer norm, forward + backward.
void BM_LayerNormBackward(benchmark::State& state) {
  Tensor x = randn({kB, kT, kD}), gamma = randn({kD}, 1), beta = randn({kD}, 2), g = randn({kB, kT, kD}, 3);
  for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
  for (auto _ : state) benchmark::DoNotOptimize(grad({layer_norm(x, gamma, beta)}, {x, gamma, beta}, {g}));
}
BENCHMARK(BM_LayerNormBackward)->Unit(benchmark::kMicrosecond);

// softmax(q k^T / sqrt(d)) v over (B, H, T, d) on the reference workload's shapes (64 images x 4 heads of 50 x 32),
// forward only (no tape) and forward + backward, by the fused primitive (fused = 1, what the models run) and by the
// composed ops it replaced (fused = 0). q, k, v are split_heads views of (B, T, H*d) projections and the output's
// heads are merged, as in the models. The fused / composed ratio of one run is the speed-up.
void BM_Attention(benchmark::State& state) {
  bool with_backward = state.range(0) != 0, fused = state.range(1) != 0;
  int64_t d = kD / kH;
  Tensor q = randn({kB, kT, kD}, 1), k = randn({kB, kT, kD}, 2), v = randn({kB, kT, kD}, 3), g = randn({kB, kT, kD}, 4);
  double scale = 1.0 / std::sqrt(double(d));
  if (with_backward)
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
  auto attention = [&] {
    Tensor qh = nn::split_heads(q, kH), kh = nn::split_heads(k, kH), vh = nn::split_heads(v, kH);
    return nn::merge_heads(fused ? nn::scaled_dot_product_attention(qh, kh, vh, Tensor(), scale)
                                 : nn::composed_attention(qh, kh, vh, Tensor(), scale));
  };
  for (auto _ : state) {
    if (with_backward) {
      benchmark::DoNotOptimize(grad({attention()}, {q, k, v}, {g}));
    } else {
      NoGradGuard no_grad;
      benchmark::DoNotOptimize(attention());
    }
  }
  set_gemm_counters(state, (with_backward ? 6.0 : 2.0) * 2.0 * kB * kH * kT * kT * d);
}
BENCHMARK(BM_Attention)
    ->ArgNames({"backward", "fused"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Unit(benchmark::kMicrosecond);

// A 128 -> out linear layer with a rank-8 LoRA adapter (frozen W0), forward + backward to A, B and x.
void BM_LoraLinear(benchmark::State& state) {
  int64_t out = state.range(0);
  Generator init(0);
  nn::Linear lin(kD, out, true, init);
  peft::LoraConfig config;
  config.rank = kRank;
  config.alpha = 16;
  config.init = peft::LoraInit::BothRandom;
  auto adapter = std::make_shared<peft::LoraAdapter>(kD, out, config, init, DType::F32);
  lin.set_adapter(adapter);
  lin.weight.set_requires_grad(false);
  lin.bias.set_requires_grad(false);
  Tensor x = randn({kB, kT, kD}, 1), g = randn({kB, kT, out}, 2);
  x.set_requires_grad(true);
  for (auto _ : state)
    benchmark::DoNotOptimize(grad({lin.forward(x)}, {x, adapter->lora_A->weight, adapter->lora_B->weight}, {g}));
}
BENCHMARK(BM_LoraLinear)->ArgName("out")->Arg(kD)->Arg(kMlp)->Unit(benchmark::kMicrosecond);

// The forward of a linear layer y = x W^T + b without a tape (the bias added by the GEMM as it stores y).
void BM_LinearForward(benchmark::State& state) {
  int64_t out = state.range(0), in = state.range(1);
  Tensor x = randn({kB, kT, in}, 1), w = randn({out, in}, 2), b = randn({out}, 3);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(linear(x, w, b));
  set_gemm_counters(state, 2.0 * kRows * in * out);
}
BENCHMARK(BM_LinearForward)
    ->ArgNames({"out", "in"})
    ->Args({kD, kD})
    ->Args({kMlp, kD})
    ->Args({kD, kMlp})
    ->Unit(benchmark::kMicrosecond);

// The JVP of a linear layer y = x W^T + b in all of (x, W, b): three GEMM-sized products.
void BM_LinearJvp(benchmark::State& state) {
  int64_t out = state.range(0);
  Tensor x = randn({kB, kT, kD}, 1), w = randn({out, kD}, 2), b = randn({out}, 3);
  Tensor tx = randn({kB, kT, kD}, 4), tw = randn({out, kD}, 5), tb = randn({out}, 6);
  NoGradGuard no_grad;
  for (auto _ : state)
    benchmark::DoNotOptimize(jvp([](const Tensors& p) { return linear(p[0], p[1], p[2]); }, {x, w, b}, {tx, tw, tb}));
}
BENCHMARK(BM_LinearJvp)->ArgName("out")->Arg(kD)->Arg(kMlp)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
