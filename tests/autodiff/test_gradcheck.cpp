#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "autodiff/primitive.h"

using namespace linfuse;

TEST_CASE("every registered gradient check passes (VJP, JVP, adjoint) for several seeds", "[autodiff][gradcheck]") {
  for (const auto& c : gradcheck_cases()) {
    for (uint64_t seed : {0, 1, 2}) {
      DYNAMIC_SECTION(c.name << " seed " << seed) {
        GradcheckResult r = run_gradcheck(c, seed);
        INFO("vjp " << r.vjp_error << " jvp " << r.jvp_error << " adjoint " << r.adjoint_error << " " << r.message);
        CHECK(r.passed);
      }
    }
  }
}

TEST_CASE("no registered primitive is left without a gradient check", "[autodiff][gradcheck]") {
  std::set<std::string> covered;
  for (const auto& c : gradcheck_cases()) {
    GradcheckResult r = run_gradcheck(c, 0);
    covered.insert(r.primitives.begin(), r.primitives.end());
  }
  auto all = registered_primitives();
  CHECK(all.size() >= 35);
  for (const auto& name : all) {
    INFO("primitive " << name << " is registered but no gradient check exercises it");
    CHECK(covered.count(name) == 1);
  }
}

namespace {
// Deliberately wrong primitives (not registered): the checks must catch them.
class WrongVjp : public Primitive {
 public:
  const char* name() const override { return "test_wrong_vjp"; }
  Tensor forward(const std::vector<Tensor>& in) override { return in[0].detach(); }
  std::vector<Tensor> vjp(const std::vector<Tensor>&, const Tensor&, const Tensor& g, const std::vector<bool>&) override {
    return {mul(g, 1.001)};
  }
  Tensor jvp(const std::vector<Tensor>&, const Tensor&, const std::vector<Tensor>& t) override { return t[0]; }
};
// Both rules "agree" with finite differences on the diagonal but the VJP is not the transpose of the JVP.
class NotTransposed : public Primitive {
 public:
  const char* name() const override { return "test_not_transposed"; }
  Tensor forward(const std::vector<Tensor>& in) override { return kernels_copy(in[0]); }
  static Tensor kernels_copy(const Tensor& a) { return contiguous(transpose(a.detach(), 0, 1)); }
  std::vector<Tensor> vjp(const std::vector<Tensor>&, const Tensor&, const Tensor& g, const std::vector<bool>&) override {
    return {g};   // should be the transpose of g
  }
  Tensor jvp(const std::vector<Tensor>&, const Tensor&, const std::vector<Tensor>& t) override { return transpose(t[0], 0, 1); }
};
}  // namespace

TEST_CASE("the gradient check catches a VJP rule that is off by 0.1 percent", "[autodiff][gradcheck]") {
  GradcheckCase c{"wrong", [](Generator& g) { return Tensors{g.normal({3, 4}, 0, 1, DType::F64)}; },
                  [](const Tensors& x) { return apply_new<WrongVjp>({x[0]}); }};
  GradcheckResult r = run_gradcheck(c);
  CHECK_FALSE(r.passed);
  CHECK(r.vjp_error > 1e-4);
  CHECK(r.adjoint_error > 1e-6);   // 0.1% off: far above the 1e-10 tolerance
}

TEST_CASE("the gradient check catches rules that are not each other's transpose", "[autodiff][gradcheck]") {
  GradcheckCase c{"not transposed", [](Generator& g) { return Tensors{g.normal({3, 3}, 0, 1, DType::F64)}; },
                  [](const Tensors& x) { return apply_new<NotTransposed>({x[0]}); }};
  GradcheckResult r = run_gradcheck(c);
  CHECK_FALSE(r.passed);
  CHECK(r.adjoint_error > 1e-3);
}

namespace {

struct GradcheckRun {
  int exit_code = -1;
  std::string output;   // stdout and stderr
};

// Runs the built `linfuse gradcheck ARGS` (next to this test binary).
GradcheckRun run_gradcheck_cli(const std::string& args) {
  std::string binary = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "linfuse").string();
  REQUIRE(std::filesystem::exists(binary));
  GradcheckRun run;
  FILE* pipe = popen((binary + " gradcheck " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe);
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.output.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace

// Regression (issue 18, findings 3 and 13): --threads 0 and -1 aborted on an uncaught std::invalid_argument (exit
// 134); a --filter matching nothing reported "0 checks" and exited 0.
TEST_CASE("linfuse gradcheck takes --threads 0 as all cores, refuses a negative count and a filter that matches nothing",
          "[autodiff][gradcheck][cli]") {
  GradcheckRun all_cores = run_gradcheck_cli("--threads 0 --filter matmul");
  INFO(all_cores.output);
  CHECK(all_cores.exit_code == 0);
  CHECK(all_cores.output.find("0 failed") != std::string::npos);
  GradcheckRun negative = run_gradcheck_cli("--threads -1 --filter matmul");
  INFO(negative.output);
  CHECK(negative.exit_code == 2);
  CHECK(negative.output.find("--threads must be 0 (all cores) or a positive count, got -1") != std::string::npos);
  GradcheckRun nothing = run_gradcheck_cli("--filter nonexistent");
  INFO(nothing.output);
  CHECK(nothing.exit_code == 2);
  CHECK(nothing.output.find("--filter 'nonexistent' matches no check; the checks are: ") != std::string::npos);
  CHECK(nothing.output.find("matmul") != std::string::npos);
}
