// linfuse forward: runs a reference model (nn/reference_models.h) on inputs from a safetensors file and writes
// its outputs, gradients and JVPs to another, so that linfuse serves as an oracle for other implementations.
// The help lists every tensor name from the same tables the checks use (nn/reference_models.cpp).
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <new>
#include <sstream>
#include <string>

#include "cli/command_line.h"
#include "nn/file_checks.h"
#include "nn/reference_models.h"
#include "nn/reference_parameters.h"
#include "nn/reference_run.h"
#include "nn/safetensors.h"
#include "tensor/threading.h"

namespace {

// `text` wrapped at `width` columns, every line after the first indented by `indent` spaces.
std::string wrap(const std::string& text, size_t indent, size_t width = 112) {
  std::istringstream words(text);
  std::string out, line, word;
  while (words >> word) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      out += line + "\n" + std::string(indent, ' ');
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

std::string pad(const std::string& s, size_t width) { return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' '); }

// The column where a tensor's description starts: "    in   " + name (27) + shape (14) + dtype (7) + "required  ".
constexpr size_t kDocColumn = 9 + 27 + 14 + 7 + 10;

std::string tensor_tables() {
  std::string out;
  for (const auto& spec : linfuse::nn::reference_model_specs()) {
    out += "  " + spec.name + ": " + spec.summary + "\n";
    for (const auto& t : spec.inputs)
      out += "    in   " + pad(t.name, 27) + pad(t.shape, 14) + pad(t.dtype, 7) + (t.required ? "required  " : "optional  ") +
             wrap(t.doc, kDocColumn) + "\n";
    for (const auto& t : spec.outputs)
      out += "    out  " + pad(t.name, 27) + pad(t.shape, 14) + pad(t.dtype, 7) + "          " + wrap(t.doc, kDocColumn) + "\n";
    std::string losses;
    for (const auto& name : linfuse::nn::reference_losses(spec.name)) losses += (losses.empty() ? "" : ", ") + name;
    out += "    losses: " + wrap(losses, 12) + "\n\n";
  }
  return out;
}

std::string help_text(const cxxopts::Options& options) {
  return options.help() + "\n" +
         "Config (--config): a Hugging Face config.json (model_type \"clip\" runs as clip, or as one tower with --model\n"
         "clip_vision / clip_text; \"clip_vision_model\" / \"clip_text_model\" as that tower; \"t5\" as t5), or\n"
         "  {\"model\": \"clip_vision\", \"config\": {...the Hugging Face config...}}\n"
         "Unknown config fields are ignored and missing ones take Hugging Face's defaults, as in transformers.\n\n"
         "Weights (--weights): parameter name -> tensor with Hugging Face's names and shapes, any floating dtype (cast to\n"
         "--dtype). Every parameter must be present and nothing else, except what transformers skips too: old\n"
         "position_ids buffers (of any dtype: transformers saves them as I64), T5's encoder/decoder.embed_tokens.weight\n"
         "(and a tied lm_head.weight), which must equal shared.weight, and, for clip_vision / clip_text, the other parts\n"
         "of a whole CLIPModel checkpoint. Names and shapes are checked against the config before the model is built,\n"
         "and so is the memory its parameters need.\n\n"
         "Models, their inputs (--inputs: safetensors, tensor name -> tensor) and outputs (--out):\n"
         "  dtype: float = any floating type, cast to --dtype; int64 = stored as I64; 0/1 = a mask of any dtype.\n"
         "  Outputs are written in --dtype.\n\n" +
         tensor_tables() +
         "Gradients (--loss NAME --grads): also writes grad.<parameter>, the gradient of the scalar loss for every\n"
         "parameter (names as --list-parameters prints them; T5's embedding once, as shared.weight). clip_loss and\n"
         "cross_entropy are the output 'loss'; sum_of_<output> is the sum of that output's entries (the vector-Jacobian\n"
         "product with a cotangent of ones), so every output has a gradient to compare. T5's loss with every label -100\n"
         "is NaN, as PyTorch's mean over no token (with a warning; its gradient is 0).\n\n"
         "JVPs (--tangents t.safetensors): parameter name -> tangent (the parameter's shape; a missing parameter has a\n"
         "zero tangent, an unknown name is an error). Also writes jvp.<output> for every output: its derivative along\n"
         "the tangents, computed in forward mode.\n\n"
         "Known difference from Hugging Face: masks are -inf here and finfo(dtype).min there. They agree except where\n"
         "a query sees no unmasked key at all (an all-padding T5 input row, decoder_attention_mask 0 at position 0, a\n"
         "CLIP text whose end-of-text token sees only padding): HF attends uniformly, linfuse to nothing. Such inputs\n"
         "give a warning naming the row.\n\n"
         "Exit status: 0 written; 1 a problem with a file (the message names it; no output is written); 2 bad options\n"
         "(an --out that is one of the input files included).\n"
         "Example:\n"
         "  linfuse forward --config clip/config.json --weights clip/model.safetensors --inputs in.safetensors \\\n"
         "                  --out out.safetensors --loss clip_loss --grads --tangents t.safetensors --dtype float64\n";
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "linfuse forward: %s (see 'linfuse forward --help')\n", message.c_str());
  return 2;
}

}  // namespace

int forward_main(int argc, char** argv) {
  cxxopts::Options options("linfuse forward",
                           "Runs a CLIP or T5 model as Hugging Face's transformers does (eval mode: no dropout) and\n"
                           "writes its outputs, optionally the gradient of a loss for every parameter and the JVP of\n"
                           "every output along parameter tangents, to a safetensors file: a reference to check other\n"
                           "implementations against.\n");
  options.custom_help("--config FILE --weights FILE --inputs FILE --out FILE [--loss NAME --grads] [--tangents FILE]");
  options.add_options()("config", "model config (JSON, see below)", cxxopts::value<std::string>())(
      "model", "clip, clip_vision, clip_text or t5 (default: the config's)", cxxopts::value<std::string>())(
      "weights", "weights (safetensors, Hugging Face names)", cxxopts::value<std::string>())(
      "inputs", "inputs (safetensors, names below)", cxxopts::value<std::string>())(
      "out", "output file (safetensors; written atomically, only on success; never one of the input files)",
      cxxopts::value<std::string>())(
      "loss", "scalar to differentiate with --grads (losses below)", cxxopts::value<std::string>())(
      "grads", "write grad.<parameter> of --loss for every parameter")(
      "tangents", "parameter tangents (safetensors); write jvp.<output>", cxxopts::value<std::string>())(
      "dtype", "float32 or float64: the compute and output dtype", cxxopts::value<std::string>()->default_value("float32"))(
      "threads", "threads (0: LINFUSE_THREADS, else all cores); results do not depend on it",
      cxxopts::value<int>()->default_value("0"))(
      "list-parameters", "print the parameter names and shapes the config expects, and exit")("h,help", "show this help");
  const linfuse::cli::CommandLine line = linfuse::cli::parse_command_line(options, argc, argv, "linfuse forward", help_text(options));
  if (line.exit_code) return *line.exit_code;
  const cxxopts::ParseResult& args = line.args;
  auto text = [&](const char* name) { return args.count(name) ? args[name].as<std::string>() : std::string(); };

  linfuse::nn::ReferenceRunOptions o;
  o.config_path = text("config");
  o.model = text("model");
  const std::string dtype = args["dtype"].as<std::string>();
  if (dtype == "float32") o.dtype = linfuse::DType::F32;
  else if (dtype == "float64") o.dtype = linfuse::DType::F64;
  else return usage_error("--dtype must be float32 or float64, got '" + dtype + "'");
  if (args["threads"].as<int>() < 0)
    return usage_error("--threads must be 0 (the default) or a positive count, got " +
                       std::to_string(args["threads"].as<int>()));
  if (args["threads"].as<int>() > 0) linfuse::set_num_threads(args["threads"].as<int>());

  if (args.count("list-parameters")) {
    if (o.config_path.empty()) return usage_error("--list-parameters needs --config");
    try {   // from the config alone: nothing is allocated, whatever the sizes
      for (const auto& p : linfuse::nn::reference_parameter_shapes(linfuse::nn::read_reference_config(o.config_path, o.model)))
        std::printf("%s %s\n", p.name.c_str(), linfuse::shape_str(p.shape).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "linfuse forward: %s\n", e.what());
      return 1;
    }
    return 0;
  }

  for (const char* required : {"config", "weights", "inputs", "out"})
    if (text(required).empty()) return usage_error(std::string("missing --") + required);
  o.weights_path = text("weights");
  o.inputs_path = text("inputs");
  o.tangents_path = text("tangents");
  const std::string out = text("out");
  // Checked before the run, so that a typo costs nothing (the writer would refuse it only at the end).
  if (std::filesystem::is_directory(out))
    return usage_error("--out '" + out + "' is a directory: give the path of the .safetensors file to write");
  // The output replaces its target only at the end, by rename: an --out that names an input would replace it.
  for (const char* input : {"config", "weights", "inputs", "tangents"})
    if (!linfuse::input_named_by(out, {text(input)}).empty())
      return usage_error("--out '" + out + "' is the file of --" + input + " '" + text(input) +
                         "' (the same file, also through a link): writing it would replace that input; write the output elsewhere");
  // --loss and --grads come together: a loss alone would compute nothing, --grads alone would have to guess.
  if (args.count("grads") && !args.count("loss")) return usage_error("--grads needs --loss NAME");
  if (args.count("loss") && !args.count("grads")) return usage_error("--loss only chooses what --grads differentiates: add --grads");
  o.loss = text("loss");

  try {
    linfuse::nn::ReferenceRunResult result = linfuse::nn::run_reference(o);
    for (const auto& w : result.warnings) std::fprintf(stderr, "linfuse forward: warning: %s\n", w.c_str());
    for (const auto& d : result.dropped) std::fprintf(stderr, "linfuse forward: note: %s\n", d.c_str());
    linfuse::save_safetensors(out, result.tensors, result.metadata);
    size_t grads = 0, jvps = 0;
    for (const auto& [name, _] : result.tensors) {
      grads += name.rfind("grad.", 0) == 0;
      jvps += name.rfind("jvp.", 0) == 0;
    }
    std::printf("linfuse forward: %s (%s): wrote %s with %zu outputs, %zu gradients, %zu JVPs\n", result.model.c_str(),
                dtype.c_str(), out.c_str(), result.tensors.size() - grads - jvps, grads, jvps);
  } catch (const std::bad_alloc&) {   // the parameters fit (checked before the model is built); the activations did not
    std::fprintf(stderr, "linfuse forward: out of memory while running the model: give fewer or shorter inputs per "
                         "file, or use --dtype float32\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linfuse forward: %s\n", e.what());
    return 1;
  }
  return 0;
}
