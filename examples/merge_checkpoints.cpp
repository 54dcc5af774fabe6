// Merging three fine-tuned checkpoints into one, with task arithmetic and with TIES, first through the library
// (merge/), then with the `linfuse merge` command on the same files: both give the same bits.
//
// A task vector is tau_t = theta_t - theta0 (merge/task_vector.h). Task arithmetic: theta0 + lambda sum_t tau_t.
// TIES (merge/ties.h): keep each tau_t's largest 20% of entries, elect a sign per entry (the sign of the sum of the
// kept values), and average only the kept values that agree with it: entries where tasks pull in opposite
// directions no longer cancel out.
//
// Run: build/examples/merge_checkpoints [path of linfuse, default build/linfuse]   (files go to ./merge_example/)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "autodiff/ops.h"       // add
#include "merge/averaging.h"   // task_arithmetic
#include "merge/ties.h"        // ties_merging
#include "nn/safetensors.h"    // save_safetensors, load_safetensors
#include "tensor/random.h"     // Generator

using namespace linfuse;

void show(const char* what, const StateDict& sd) {   // the first 8 entries of the weight, times 100
  std::vector<float> v = sd.at("layer.weight").to_vector<float>();
  std::printf("%-20s", what);
  for (int i = 0; i < 8; ++i) std::printf(" % 6.1f", 100 * v[size_t(i)]);
  std::printf("\n");
}

bool same_bits(const StateDict& a, const StateDict& b) {
  for (const auto& [name, tensor] : a)
    if (!b.contains(name) || tensor.to_vector<float>() != b.at(name).to_vector<float>()) return false;
  return a.size() == b.size();
}

int main(int argc, char** argv) {
  // The linfuse program: given, or the one of the same build (build/linfuse beside build/examples/).
  const std::filesystem::path examples_folder = std::filesystem::path(argv[0]).parent_path();
  const std::string linfuse = argc > 1 ? argv[1] : (examples_folder / ".." / "linfuse").string(), dir = "merge_example";
  std::filesystem::create_directories(dir);

  // A "pretrained" checkpoint theta0 and three fine-tuned ones theta0 + tau_t, in float32 safetensors files.
  Generator gen(0);
  StateDict base;
  base.insert("layer.weight", gen.normal({16, 16}));
  base.insert("layer.bias", gen.normal({16}));
  save_safetensors(dir + "/base.safetensors", base);
  std::vector<std::string> files;
  for (std::string task : {"a", "b", "c"}) {
    StateDict finetuned;
    for (const auto& [name, tensor] : base) finetuned.insert(name, add(tensor, gen.normal(tensor.shape(), 0, 0.1)));
    files.push_back(dir + "/" + task + ".safetensors");
    save_safetensors(files.back(), finetuned);
  }

  // The library: read the files back, take the task vectors, merge them, add the result to theta0.
  std::vector<merge::TaskVector> task_vectors;
  for (const auto& file : files) task_vectors.push_back(merge::TaskVector::between(load_safetensors(file), base));
  merge::TaskVector merged_arithmetic = merge::task_arithmetic(task_vectors, /*scaling=*/0.3);
  merge::TiesOptions ties_options;   // keep_fraction 0.2, sign by mass, disjoint mean, lambda (scaling) 1
  merge::TaskVector merged_ties = merge::ties_merging(task_vectors, ties_options);
  StateDict arithmetic = merge::apply(base, merged_arithmetic), ties = merge::apply(base, merged_ties);
  for (size_t t = 0; t < 3; ++t) show(("tau_" + std::string(1, char('a' + t))).c_str(), task_vectors[t].tensors());
  show("task arithmetic 0.3", merged_arithmetic.tensors());
  show("TIES (k 0.2)", merged_ties.tensors());   // zero unless some tau_t's entry is in its top 20%

  // The same merges with the command line. It streams tensor by tensor and records the method in the metadata.
  const std::string inputs = " --base " + dir + "/base.safetensors --models " + files[0] + " " + files[1] + " " +
                             files[2] + " --out " + dir;
  for (const std::string& options : {" --method task_arithmetic --lambda 0.3" + inputs + "/ta.safetensors",
                                    " --method ties --keep 0.2 --lambda 1.0" + inputs + "/ties.safetensors"}) {
    const std::string command = linfuse + " merge" + options;
    std::printf("$ %s\n", command.c_str());
    std::fflush(stdout);   // so that our lines and the command's come out in order
    if (std::system(command.c_str()) != 0) return 1;
  }
  SafetensorsMetadata metadata;
  StateDict cli_arithmetic = load_safetensors(dir + "/ta.safetensors", &metadata);
  StateDict cli_ties = load_safetensors(dir + "/ties.safetensors");
  std::printf("metadata of ta.safetensors: linfuse.merge.method = %s\n", metadata["linfuse.merge.method"].c_str());
  bool ok = same_bits(arithmetic, cli_arithmetic) && same_bits(ties, cli_ties);
  std::printf("%s\n", ok ? "library and linfuse merge agree bit for bit: all checks passed" : "CHECK FAILED");
  return ok ? 0 : 1;
}
