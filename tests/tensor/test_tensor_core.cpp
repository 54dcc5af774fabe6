#include <catch2/catch.hpp>

#include "../helpers.h"
#include "tensor/elementwise.h"
#include "tensor/kernels.h"
#include "tensor/kernels_norm_grad.h"
#include "tensor/random.h"
#include "tensor/state_dict.h"
#include "tensor/threading.h"

using namespace linfuse;
using linfuse::testing::max_abs_diff;

TEST_CASE("broadcast_shapes follows NumPy and names both shapes on failure", "[tensor]") {
  CHECK(broadcast_shapes({3, 1, 4}, {2, 4}, "t") == Shape{3, 2, 4});
  CHECK(broadcast_shapes({}, {5}, "t") == Shape{5});
  try {
    broadcast_shapes({3, 2}, {4, 2}, "add");
    FAIL("expected an error");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "[add] shapes do not broadcast: (3,2) and (4,2)");
  }
}

TEST_CASE("negative axes are normalised once and bad axes are rejected", "[tensor]") {
  CHECK(normalize_axis(-1, 3, "t") == 2);
  CHECK(normalize_axes({-1, 0}, 3, "t") == std::vector<int64_t>{0, 2});
  CHECK_THROWS_AS(normalize_axis(3, 3, "t"), std::invalid_argument);
  CHECK_THROWS_AS(normalize_axes({1, -2}, 3, "t"), std::invalid_argument);
}

TEST_CASE("reshape and permute are views; reshape of a permuted tensor copies", "[tensor]") {
  Tensor a = Tensor::arange(24).as_strided({2, 3, 4}, {12, 4, 1}, 0);
  Tensor r = kernels::reshape(a, {6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.storage() == a.storage());
  Tensor p = kernels::permute(a, {2, 0, 1});
  CHECK(p.storage() == a.storage());
  CHECK_FALSE(p.is_contiguous());
  CHECK(p.to_vector<float>()[1] == 4.0f);   // p[0,0,1] = a[0,1,0]
  Tensor rp = kernels::reshape(p, {-1});
  CHECK(rp.storage() != a.storage());
  CHECK(rp.to_vector<float>() == p.to_vector<float>());
  CHECK_THROWS_WITH(kernels::reshape(a, {5, -1}), Catch::Contains("cannot infer -1"));
}

TEST_CASE("slice with steps is a view and pad with interior padding inverts it", "[tensor]") {
  Tensor a = kernels::reshape(Tensor::arange(12, DType::F64), {3, 4});
  Tensor s = kernels::slice(a, {0, 1}, {3, 4}, {2, 2});
  CHECK(s.storage() == a.storage());
  CHECK(s.to_vector<double>() == std::vector<double>{1, 3, 9, 11});
  Tensor p = kernels::pad(s, {0, 1}, {0, 0}, {1, 1}, 0.0);
  CHECK(p.shape() == Shape{3, 4});
  CHECK(p.to_vector<double>() == std::vector<double>{0, 1, 0, 3, 0, 0, 0, 0, 0, 9, 0, 11});
}

TEST_CASE("elementwise kernels handle broadcast and transposed operands", "[tensor]") {
  Tensor a = kernels::reshape(Tensor::arange(6, DType::F64), {2, 3});
  Tensor at = kernels::permute(a, {1, 0});   // (3,2)
  Tensor b = Tensor::from_list({10, 20}, {2}, DType::F64);
  Tensor c = linfuse::map<double, double, double>([](double x, double y) { return x + y; }, at, b);
  CHECK(c.to_vector<double>() == std::vector<double>{10, 23, 11, 24, 12, 25});
}

TEST_CASE("an input broadcast along the inner loop (a scalar, a value per row) gives what its expanded copy gives", "[tensor]") {
  // map_into's broadcast loop (one value loaded once) against the contiguous loop over a materialised copy:
  // the same bits, for each input in each position, with two and three inputs, and a row length off the vectors.
  Generator gen(61);
  const int64_t rows = 37, cols = 67;
  Tensor x = gen.normal({rows, cols}), y = gen.normal({rows, cols});
  Tensor per_row = gen.normal({rows, 1}), scalar = gen.normal({});
  auto expanded = [&](const Tensor& t) { return kernels::copy(kernels::broadcast_to(t, {rows, cols})); };
  auto f2 = [](float a, float b) { return a * b - a / (b + 3.0f); };
  auto f3 = [](float a, float b, float c) { return a * b + c * (a - b); };
  for (const Tensor& narrow : {per_row, scalar}) {
    const Tensor wide = expanded(narrow);
    CHECK(testing::bit_equal(map<float, float, float>(f2, x, narrow), map<float, float, float>(f2, x, wide)));
    CHECK(testing::bit_equal(map<float, float, float>(f2, narrow, x), map<float, float, float>(f2, wide, x)));
    CHECK(testing::bit_equal(map<float, float, float, float>(f3, x, narrow, y), map<float, float, float, float>(f3, x, wide, y)));
    CHECK(testing::bit_equal(map<float, float, float, float>(f3, narrow, x, narrow),
                             map<float, float, float, float>(f3, wide, x, wide)));
  }
  // Every input broadcast along the rows of the output: one value a row.
  Tensor out = Tensor::empty({rows, cols}, DType::F32);
  map_into<float, float, float>(out, f2, per_row, per_row);
  CHECK(testing::bit_equal(out, map<float, float, float>(f2, expanded(per_row), expanded(per_row))));
}

TEST_CASE("concat and cast", "[tensor]") {
  Tensor a = Tensor::from_list({1, 2}, {1, 2}), b = Tensor::from_list({3, 4, 5, 6}, {2, 2});
  Tensor c = kernels::concat({a, b}, 0);
  CHECK(c.shape() == Shape{3, 2});
  CHECK(c.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(kernels::cast(c, DType::F64).dtype() == DType::F64);
  CHECK_THROWS_WITH(kernels::concat({a, Tensor::zeros({2, 3})}, 0), Catch::Contains("disagree off axis"));
}

TEST_CASE("reductions match a straightforward loop over any axes", "[tensor]") {
  Generator gen(7);
  Tensor a = gen.normal({3, 4, 5}, 0, 1, DType::F64);
  auto v = a.to_vector<double>();
  Tensor s = kernels::sum(a, {0, 2}, false);
  Tensor m = kernels::max(a, {1}, true);
  Tensor l = kernels::logsumexp(a, {-1}, false);
  Tensor var = kernels::var(a, {0}, false, 1);
  for (int j = 0; j < 4; ++j) {
    double expect = 0;
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k) expect += v[(i * 4 + j) * 5 + k];
    CHECK(s.to_vector<double>()[j] == Approx(expect).epsilon(1e-14));
  }
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) {
      double mx = -1e300;
      for (int j = 0; j < 4; ++j) mx = std::max(mx, v[(i * 4 + j) * 5 + k]);
      CHECK(m.to_vector<double>()[i * 5 + k] == mx);
    }
  for (int i = 0; i < 12; ++i) {
    double se = 0;
    for (int k = 0; k < 5; ++k) se += std::exp(v[i * 5 + k]);
    CHECK(l.to_vector<double>()[i] == Approx(std::log(se)).epsilon(1e-13));
  }
  for (int jk = 0; jk < 20; ++jk) {
    double mean = 0, ss = 0;
    for (int i = 0; i < 3; ++i) mean += v[i * 20 + jk] / 3;
    for (int i = 0; i < 3; ++i) ss += (v[i * 20 + jk] - mean) * (v[i * 20 + jk] - mean);
    CHECK(var.to_vector<double>()[jk] == Approx(ss / 2).epsilon(1e-12));
  }
  CHECK(m.shape() == Shape{3, 1, 5});
}

TEST_CASE("logsumexp is stable at +-80 in float32 and -inf for fully -inf rows", "[tensor]") {
  float inf = std::numeric_limits<float>::infinity();
  Tensor a = Tensor::from_vector(std::vector<float>{80, 79, -80, -inf, -inf, -inf}, {2, 3});
  auto l = kernels::logsumexp(a, {-1}, false).to_vector<float>();
  CHECK(l[0] == Approx(80 + std::log(1 + std::exp(-1.0))));
  CHECK(l[1] == -inf);
  auto s = kernels::softmax_last(a).to_vector<float>();
  CHECK(s[3] == 0.0f);
  CHECK(s[4] == 0.0f);
  CHECK(s[0] + s[1] + s[2] == Approx(1.0f));
}

TEST_CASE("matmul matches a naive product for plain, transposed and broadcast-batched operands", "[tensor]") {
  Generator gen(3);
  auto naive = [](const Tensor& a, const Tensor& b) {   // 2-D only
    int64_t m = a.size(0), k = a.size(1), n = b.size(1);
    auto x = a.to_vector<double>(), y = b.to_vector<double>();
    std::vector<double> c(m * n, 0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p) c[i * n + j] += x[i * k + p] * y[p * n + j];
    return Tensor::from_vector(c, {m, n});
  };
  Tensor a = gen.normal({5, 7}, 0, 1, DType::F64), b = gen.normal({7, 3}, 0, 1, DType::F64);
  CHECK(max_abs_diff(kernels::matmul(a, b), naive(a, b)) < 1e-12);
  Tensor at = kernels::permute(gen.normal({7, 5}, 0, 1, DType::F64), {1, 0});
  CHECK(max_abs_diff(kernels::matmul(at, b), naive(at, b)) < 1e-12);
  Tensor bb = gen.normal({4, 7, 3}, 0, 1, DType::F64);
  Tensor ab = gen.normal({2, 1, 5, 7}, 0, 1, DType::F64);
  Tensor c = kernels::matmul(ab, bb);
  REQUIRE(c.shape() == Shape{2, 4, 5, 3});
  Tensor c13 = kernels::slice(c, {1, 3, 0, 0}, {2, 4, 5, 3}, {1, 1, 1, 1});
  Tensor a1 = kernels::reshape(kernels::slice(ab, {1, 0, 0, 0}, {2, 1, 5, 7}, {1, 1, 1, 1}), {5, 7});
  Tensor b3 = kernels::reshape(kernels::slice(bb, {3, 0, 0}, {4, 7, 3}, {1, 1, 1}), {7, 3});
  CHECK(max_abs_diff(kernels::reshape(c13, {5, 3}), naive(a1, b3)) < 1e-12);
  CHECK_THROWS_WITH(kernels::matmul(a, a), Catch::Contains("[matmul] inner sizes differ: (5,7) x (5,7)"));
}

TEST_CASE("layer_norm and rms_norm kernels normalise rows", "[tensor]") {
  Generator gen(1);
  Tensor x = gen.normal({4, 16}, 3.0, 2.0, DType::F64);
  Tensor y, mean, rstd;
  kernels::layer_norm(x, Tensor(), Tensor(), 1e-5, y, mean, rstd);
  auto yv = y.to_vector<double>();
  for (int r = 0; r < 4; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < 16; ++i) m += yv[r * 16 + i] / 16;
    for (int i = 0; i < 16; ++i) v += (yv[r * 16 + i] - m) * (yv[r * 16 + i] - m) / 16;
    CHECK(std::abs(m) < 1e-12);
    CHECK(v == Approx(1.0).epsilon(1e-4));
  }
  Tensor yr, r2;
  kernels::rms_norm(x, Tensor(), 1e-6, yr, r2);
  auto rv = yr.to_vector<double>();
  double ms = 0;
  for (int i = 0; i < 16; ++i) ms += rv[i] * rv[i] / 16;
  CHECK(ms == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("layer norm's row kernels give every row the bits it gets alone, at 1 and 2 threads", "[tensor][threads]") {
  // The kernels interleave the fixed-order sums of groups of rows: each row must still see exactly its own
  // operations, whether it falls in a group or in a task's remainder, and however the rows are split between threads.
  using testing::bit_equal;
  Generator gen(3);
  for (int64_t rows : {37, 3200}) {
    const int64_t n = 128;
    Tensor x = gen.normal({rows, n}, 0.5, 2.0), v = gen.normal({rows, n}), gamma = gen.normal({n}), beta = gen.normal({n});
    for (int threads : {1, 2}) {
      CAPTURE(rows, threads);
      set_num_threads(threads);
      Tensor y, mean, rstd;
      kernels::layer_norm(x, gamma, beta, 1e-5, y, mean, rstd);
      std::vector<Tensor> dx;
      for (bool jvp : {false, true})
        for (const Tensor& g : {gamma, Tensor()}) dx.push_back(kernels::layer_norm_dx(x, mean, rstd, g, v, jvp));
      for (int64_t r : {int64_t(0), int64_t(5), int64_t(8), int64_t(31), rows - 1}) {
        CAPTURE(r);
        auto row = [&](const Tensor& t) { return kernels::contiguous(kernels::slice(t, {r, 0}, {r + 1, n}, {1, 1})); };
        auto one = [&](const Tensor& t) { return kernels::contiguous(kernels::slice(t, {r}, {r + 1}, {1})); };
        Tensor y1, mean1, rstd1;
        kernels::layer_norm(row(x), gamma, beta, 1e-5, y1, mean1, rstd1);
        CHECK(bit_equal(y1, row(y)));
        CHECK(bit_equal(mean1, one(mean)));
        CHECK(bit_equal(rstd1, one(rstd)));
        size_t i = 0;
        for (bool jvp : {false, true})
          for (const Tensor& g : {gamma, Tensor()}) {
            CAPTURE(jvp, g.defined());
            CHECK(bit_equal(kernels::layer_norm_dx(row(x), mean1, rstd1, g, row(v), jvp), row(dx[i++])));
          }
      }
    }
  }
  set_num_threads(2);
}

TEST_CASE("index kernels: index_select/index_add and gather/scatter_add are transposes", "[tensor]") {
  Tensor a = kernels::reshape(Tensor::arange(12, DType::F64), {4, 3});
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{2, 0, 2}, {3});
  Tensor sel = kernels::index_select(a, 0, idx);
  CHECK(sel.to_vector<double>() == std::vector<double>{6, 7, 8, 0, 1, 2, 6, 7, 8});
  Tensor back = kernels::index_add({4, 3}, 0, idx, sel);
  CHECK(back.to_vector<double>() == std::vector<double>{0, 1, 2, 0, 0, 0, 12, 14, 16, 0, 0, 0});
  CHECK_THROWS_WITH(kernels::index_select(a, 0, Tensor::from_vector(std::vector<int64_t>{4}, {1})),
                    Catch::Contains("index 4 is out of range [0, 4)"));
  Tensor oh = kernels::one_hot(Tensor::from_vector(std::vector<int64_t>{1, 0}, {2}), 3, DType::F32);
  CHECK(oh.to_vector<float>() == std::vector<float>{0, 1, 0, 1, 0, 0});
}

TEST_CASE("the random generator gives the same numbers whatever the thread count", "[tensor][random]") {
  set_num_threads(1);
  Tensor a = Generator(42).normal({100000});
  set_num_threads(2);
  Tensor b = Generator(42).normal({100000});
  CHECK(linfuse::testing::bit_equal(a, b));
  auto v = a.to_vector<double>();
  double mean = 0, var = 0;
  for (double x : v) mean += x / v.size();
  for (double x : v) var += (x - mean) * (x - mean) / v.size();
  CHECK(std::abs(mean) < 0.02);
  CHECK(var == Approx(1.0).epsilon(0.02));
  Generator g(5);
  Tensor first = g.uniform({10});
  Tensor second = g.uniform({10});
  CHECK_FALSE(linfuse::testing::bit_equal(first, second));   // draws advance the counter
  auto perm = Generator(1).permutation(50);
  std::sort(perm.begin(), perm.end());
  for (int64_t i = 0; i < 50; ++i) CHECK(perm[i] == i);
}

TEST_CASE("reductions give the same bits with 1 and 2 threads", "[tensor][threads]") {
  Generator gen(9);
  Tensor a = gen.normal({300, 1000});
  set_num_threads(1);
  Tensor s1 = kernels::sum(a, {}, false), c1 = kernels::sum(a, {0}, false), r1 = kernels::sum(a, {1}, false);
  set_num_threads(2);
  Tensor s2 = kernels::sum(a, {}, false), c2 = kernels::sum(a, {0}, false), r2 = kernels::sum(a, {1}, false);
  CHECK(linfuse::testing::bit_equal(s1, s2));
  CHECK(linfuse::testing::bit_equal(c1, c2));
  CHECK(linfuse::testing::bit_equal(r1, r2));
}

TEST_CASE("freed buffers are reused by the allocator cache", "[tensor][allocator]") {
  size_t before = allocator_stats().bytes_in_use;
  void* first;
  {
    Tensor t = Tensor::empty({1000, 1000});
    first = t.raw_data();
    CHECK(allocator_stats().bytes_in_use >= before + 4000000);
  }
  Tensor again = Tensor::empty({1000, 1000});
  CHECK(again.raw_data() == first);
}

TEST_CASE("StateDict keeps insertion order and names missing or duplicate keys", "[tensor][state_dict]") {
  StateDict sd;
  sd.insert("b.weight", Tensor::zeros({2}));
  sd.insert("a.bias", Tensor::ones({3}));
  CHECK(sd.names() == std::vector<std::string>{"b.weight", "a.bias"});
  CHECK(sd.numel() == 5);
  CHECK_THROWS_WITH(sd.insert("a.bias", Tensor()), Catch::Contains("duplicate name 'a.bias'"));
  CHECK_THROWS_WITH(sd.at("c"), Catch::Contains("no tensor named 'c'"));
  sd.set("a.bias", Tensor::zeros({1}));
  CHECK(sd.at("a.bias").numel() == 1);
  sd.erase("b.weight");
  CHECK(sd.names() == std::vector<std::string>{"a.bias"});
}

TEST_CASE("a batched matmul passes the layout of a permuted operand of its shape on to the output", "[tensor][matmul]") {
  // Heads split from (B, T, H*D) by a transpose: the product with them comes out in (B, T, H, D) order, so
  // transposing back is a contiguous view; values as with contiguous operands, also for a column-major C.
  Generator gen(5);
  Tensor x = gen.normal({2, 6, 3, 4});                       // (B, T, H, D) memory
  Tensor heads = kernels::permute(x, {0, 2, 1, 3});          // (B, H, T, D) view
  Tensor scores = gen.normal({2, 3, 6, 6});
  Tensor out = kernels::matmul(scores, heads);               // (B, H, T, D)
  CHECK(kernels::permute(out, {0, 2, 1, 3}).is_contiguous());
  CHECK(max_abs_diff(out, kernels::matmul(scores, kernels::contiguous(heads))) < 1e-5);
  Tensor heads_t = kernels::permute(x, {0, 2, 3, 1});        // (B, H, D, T) view: its matrices are column-major
  Tensor square = gen.normal({2, 3, 6, 6});
  Tensor out_t = kernels::matmul(heads_t, square);           // (B, H, D, T), laid out as heads_t
  CHECK(out_t.strides() == heads_t.strides());
  CHECK(max_abs_diff(out_t, kernels::matmul(kernels::contiguous(heads_t), square)) < 1e-5);
}
