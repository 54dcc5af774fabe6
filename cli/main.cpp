// linfuse: the command line. Subcommands: experiment, report, forward, gradcheck, merge.
#include <cstdio>
#include <exception>
#include <string>

#include "tensor/blas_kernel.h"
#include "tensor/build_info.h"
#include "tensor/kernel_isa.h"

int gradcheck_main(int argc, char** argv);
int experiment_main(int argc, char** argv);
int forward_main(int argc, char** argv);
int merge_main(int argc, char** argv);
int report_main(int argc, char** argv);

int main(int argc, char** argv) {
  // The same bits on every machine: OpenBLAS on the kernel every AVX2 machine has (tensor/blas_kernel.h).
  linfuse::pin_blas_core(argv);
  // The vector width of linfuse's own kernels (tensor/kernel_isa.h), checked here so that a bad
  // LINFUSE_KERNEL_ISA is an error before any work rather than inside the first product.
  try {
    linfuse::kernels::kernel_isa();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse: %s\n", e.what());
    return 2;
  }
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "--version" || cmd == "version") {
    std::printf("%s\n", linfuse::build_summary().c_str());
    return 0;
  }
  if (cmd == "gradcheck") return gradcheck_main(argc - 1, argv + 1);
  if (cmd == "experiment") return experiment_main(argc - 1, argv + 1);
  if (cmd == "forward") return forward_main(argc - 1, argv + 1);
  if (cmd == "merge") return merge_main(argc - 1, argv + 1);
  if (cmd == "report") return report_main(argc - 1, argv + 1);
  std::fprintf(stderr,
               "usage: linfuse <command> [options]\n\n"
               "commands:\n"
               "  experiment  the study end to end: pretrain, fine-tune in five modes, merge, analyse, report\n"
               "  report      write a results folder's report.md, tables and plots again from its results.json\n"
               "  forward     run CLIP / T5 as a reference: outputs, gradients and JVPs to a safetensors file\n"
               "  gradcheck   check every primitive's VJP, JVP and adjoint identity in float64\n"
               "  merge       merge safetensors checkpoints or PEFT adapters (task arithmetic, TIES, DARE, ...)\n\n"
               "Run 'linfuse <command> --help' for the options of a command; 'linfuse --version' says which commit,\n"
               "compiler, instruction set and OpenBLAS kernel this build runs on, and which path its own kernels take\n"
               "(AVX-512 where the CPU has it; LINFUSE_KERNEL_ISA=avx2 forces AVX2; the results are the same bits).\n");
  return cmd.empty() || cmd == "--help" || cmd == "-h" ? 0 : 2;
}
