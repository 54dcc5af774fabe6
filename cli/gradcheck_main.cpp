// linfuse gradcheck: one row per registered check, with the three errors and pass/fail.
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <set>
#include <string>
#include <vector>

#include "autodiff/gradcheck.h"
#include "autodiff/primitive.h"
#include "cli/command_line.h"
#include "tensor/threading.h"

int gradcheck_main(int argc, char** argv) {
  cxxopts::Options options("linfuse gradcheck",
                           "Checks every primitive's reverse-mode (VJP) and forward-mode (JVP) rule in float64:\n"
                           "  vjp      reverse mode vs central differences of <u, f(x)>, u a random Gaussian cotangent\n"
                           "  jvp      forward mode (and linearize) vs the directional difference (f(x+hv)-f(x-hv))/2h\n"
                           "  adjoint  |<u, Jv> - <J^T u, v>| / (|u||Jv| + |J^T u||v|), must be <= 1e-10\n"
                           "Errors of vjp/jvp are max|analytic - numeric| / max(1, max|numeric|).\n"
                           "Exits 1 if any row fails or a primitive has no check, 2 for bad options (a --filter that\n"
                           "matches no check included).");
  options.add_options()("filter", "only checks whose name contains this text", cxxopts::value<std::string>()->default_value(""))(
      "seed", "random seed for inputs and directions", cxxopts::value<uint64_t>()->default_value("0"))(
      "threads", "threads for TBB and OpenBLAS (0: LINFUSE_THREADS, else all cores)", cxxopts::value<int>()->default_value("1"))(
      "h,help", "show this help");
  const linfuse::cli::CommandLine line = linfuse::cli::parse_command_line(options, argc, argv, "linfuse gradcheck", options.help());
  if (line.exit_code) return *line.exit_code;
  const cxxopts::ParseResult& args = line.args;
  const int threads = args["threads"].as<int>();
  if (threads < 0) {
    std::fprintf(stderr, "linfuse gradcheck: --threads must be 0 (all cores) or a positive count, got %d\n", threads);
    return 2;
  }
  if (threads > 0) linfuse::set_num_threads(threads);   // 0 keeps the default, as in the other subcommands
  std::string filter = args["filter"].as<std::string>();
  // A filter that matches nothing would report "0 checks, 0 failed" and pass: a typo must not look like success.
  std::vector<std::string> names;
  bool any = false;
  for (const auto& c : linfuse::gradcheck_cases()) {
    names.push_back(c.name);
    any = any || c.name.find(filter) != std::string::npos;
  }
  if (!any) {
    std::string listing;
    for (const auto& name : names) listing += (listing.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "linfuse gradcheck: --filter '%s' matches no check; the checks are: %s\n", filter.c_str(),
                 listing.c_str());
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  std::printf("%-40s %10s %10s %10s  %s\n", "check", "vjp", "jvp", "adjoint", "result");
  int failed = 0, run = 0;
  std::set<std::string> covered;
  for (const auto& c : linfuse::gradcheck_cases()) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    auto r = linfuse::run_gradcheck(c, args["seed"].as<uint64_t>());
    ++run;
    covered.insert(r.primitives.begin(), r.primitives.end());
    std::printf("%-40s %10.2e %10.2e %10.2e  %s\n", r.name.c_str(), r.vjp_error, r.jvp_error, r.adjoint_error,
                r.passed ? "pass" : "FAIL");
    if (!r.passed) {
      ++failed;
      std::printf("    %s\n", r.message.c_str());
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> unchecked;
  if (filter.empty())
    for (const auto& name : linfuse::registered_primitives())
      if (!covered.count(name)) unchecked.push_back(name);
  std::printf("\n%d checks, %d failed; %zu primitives registered, %zu exercised; %.1f s\n", run, failed,
              linfuse::registered_primitives().size(), covered.size(), seconds);
  for (const auto& name : unchecked) std::printf("UNCHECKED primitive: %s\n", name.c_str());
  return failed || !unchecked.empty() ? 1 : 0;
}
