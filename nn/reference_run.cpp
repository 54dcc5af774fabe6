#include "nn/reference_run.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "nn/reference_models.h"
#include "nn/reference_parameters.h"
#include "tensor/kernels.h"

namespace linfuse::nn {

namespace {

bool is_float_format(SafetensorsDType d) {
  using S = SafetensorsDType;
  return d == S::F64 || d == S::F32 || d == S::F16 || d == S::BF16 || d == S::F8_E4M3 || d == S::F8_E5M2;
}

// Every tensor of a file with the dtype it is stored in (the reader widens I32 to int64, F16 to float32...).
struct StoredTensors {
  StateDict tensors;
  std::map<std::string, SafetensorsDType> stored;
};

StoredTensors read_tensors(const std::string& path, const std::string& role) {
  try {
    SafetensorsFile file = SafetensorsFile::open(path);
    StoredTensors out;
    for (const auto& entry : file.entries()) {
      out.tensors.insert(entry.name, file.tensor(entry.name));
      out.stored[entry.name] = entry.dtype;
    }
    return out;
  } catch (const std::exception& e) {
    throw std::runtime_error(role + " " + e.what());
  }
}

// Parameter files (weights, tangents): their tensors keyed by the model's names. The skipped tensors are set aside
// first (transformers stores the old position_ids buffers as I64), then every kept one must be floating.
StateDict canonical_parameters(const StoredTensors& file, const std::string& role, const std::string& path,
                               const ReferenceConfig& config, std::vector<std::string>& dropped) {
  for (const auto& [name, stored] : file.stored)
    if (!is_float_format(stored) && reference_skip_reason(config.model, name).empty())
      throw std::invalid_argument(role + " '" + path + "': " + name + " is stored as " +
                                  safetensors_dtype_name(stored) + "; parameters are floating (F32, F64, F16 or BF16)");
  std::vector<std::string> skipped;
  StateDict canonical;
  try {
    canonical = canonical_reference_names(config, file.tensors, &skipped);
  } catch (const std::exception& e) {
    throw std::invalid_argument(role + " '" + path + "': " + e.what());
  }
  for (const auto& s : skipped) dropped.push_back(role + " '" + path + "': skipped " + s);
  return canonical;
}

std::string list(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < 20; ++i) s += "\n    " + items[i];
  if (items.size() > 20) s += "\n    ... and " + std::to_string(items.size() - 20) + " more";
  return s;
}

// Strict fit of the weights to the config's parameters: every parameter present with its shape, nothing else.
void check_weights_fit(const StateDict& weights, const std::vector<ParameterShape>& expected, const ReferenceRunOptions& o,
                       const std::string& model) {
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> known;
  for (const auto& [name, shape] : expected) {
    known.insert(name);
    if (!weights.contains(name)) missing.push_back(name + " " + shape_str(shape));
    else if (weights.at(name).shape() != shape)
      mismatched.push_back(name + " is " + shape_str(weights.at(name).shape()) + " in the file, " + shape_str(shape) +
                           " for the config");
  }
  for (const auto& [name, _] : weights)
    if (!known.count(name)) unexpected.push_back(name);
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return;
  std::ostringstream msg;
  msg << "weights '" << o.weights_path << "' do not fit the " << model << " model of config '" << o.config_path << "':";
  if (!missing.empty()) msg << "\n  missing (" << missing.size() << "):" << list(missing);
  if (!unexpected.empty()) msg << "\n  unexpected (" << unexpected.size() << "):" << list(unexpected);
  if (!mismatched.empty()) msg << "\n  wrong shape (" << mismatched.size() << "):" << list(mismatched);
  msg << "\n  fix: use the config the weights were saved with, with Hugging Face's parameter names ('linfuse forward "
         "--list-parameters --config ...' prints the names and shapes the config expects)";
  throw std::invalid_argument(msg.str());
}

std::string gigabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g GB", double(bytes) / 1e9);
  return text;
}

// The parameters of the config must fit in this machine's memory: checked before the model is built, so that an
// oversized config (a vocabulary of 10^12) is named instead of failing as std::bad_alloc, or after minutes.
void check_fits_in_memory(const std::vector<ParameterShape>& parameters, const ReferenceRunOptions& o, const std::string& model) {
  const uint64_t bytes = parameter_bytes(parameters, o.dtype);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return;   // unknown: let the allocation decide
  const uint64_t memory = uint64_t(pages) * uint64_t(page_size);
  if (bytes <= memory) return;
  const ParameterShape* largest = &parameters.front();
  auto numel = [](const Shape& shape) {
    long double n = 1;
    for (int64_t d : shape) n *= (long double)d;
    return n;
  };
  for (const auto& p : parameters)
    if (numel(p.shape) > numel(largest->shape)) largest = &p;
  throw std::invalid_argument("config '" + o.config_path + "': the " + model + " model's parameters take " +
                              (bytes == UINT64_MAX ? std::string("more bytes than can be counted") : gigabytes(bytes)) +
                              " in " + dtype_name(o.dtype) + ", more than this machine's memory (" + gigabytes(memory) +
                              "); the largest is " + largest->name + " " + shape_str(largest->shape) +
                              ": check the config's sizes");
}

// Names, dtypes and presence of the inputs, from the spec; float inputs cast to the compute dtype.
StateDict checked_inputs(const StoredTensors& file, const ReferenceModelSpec& spec, const std::string& path, DType dtype) {
  std::string names;
  for (const auto& t : spec.inputs) names += (names.empty() ? "" : ", ") + t.name;
  StateDict inputs;
  for (const auto& [name, tensor] : file.tensors) {
    const ReferenceTensorSpec* s = spec.input(name);
    if (!s)
      throw std::invalid_argument("inputs '" + path + "': '" + name + "' is not an input of " + spec.name +
                                  "; its inputs are " + names + " (see linfuse forward --help)");
    SafetensorsDType stored = file.stored.at(name);
    if (s->dtype == "int64" && stored != SafetensorsDType::I64)
      throw std::invalid_argument("inputs '" + path + "': " + name + " is stored as " + safetensors_dtype_name(stored) +
                                  "; token ids must be I64 (int64): in PyTorch save ids.to(torch.int64)");
    if (s->dtype == "float" && !is_float_format(stored))
      throw std::invalid_argument("inputs '" + path + "': " + name + " is stored as " + safetensors_dtype_name(stored) +
                                  "; it must be floating (F32, F64, F16 or BF16)");
    inputs.insert(name, s->dtype == "float" ? kernels::cast(tensor, dtype) : tensor);
  }
  for (const auto& s : spec.inputs)
    if (s.required && !inputs.contains(s.name))
      throw std::invalid_argument("inputs '" + path + "': missing " + s.name + " " + s.shape + " " + s.dtype + " (" +
                                  s.doc + "), required by " + spec.name);
  return inputs;
}

// Tangents: each a parameter of the model with its shape; cast to the compute dtype.
StateDict checked_tangents(const StateDict& tangents, const std::vector<ParameterShape>& parameters, const std::string& path,
                           DType dtype) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, shape] : parameters) shapes[name] = shape;
  StateDict out;
  for (const auto& [name, tangent] : tangents) {
    if (!shapes.count(name))
      throw std::invalid_argument("tangents '" + path + "': '" + name +
                                  "' is not a parameter of the model (a typo would silently give a zero tangent); "
                                  "use the names 'linfuse forward --list-parameters' prints");
    if (tangent.shape() != shapes.at(name))
      throw std::invalid_argument("tangents '" + path + "': " + name + " is " + shape_str(tangent.shape()) +
                                  " but the parameter is " + shape_str(shapes.at(name)));
    out.insert(name, kernels::cast(tangent, dtype));
  }
  return out;
}

// The output a loss differentiates and whether it is summed.
struct LossChoice {
  std::string output;
  bool sum = false;
};

LossChoice resolve_loss(const ReferenceModelSpec& spec, const std::string& loss) {
  for (const auto& [name, output] : spec.losses)
    if (name == loss) return {output, false};
  const std::string prefix = "sum_of_";
  if (loss.rfind(prefix, 0) == 0 && spec.output(loss.substr(prefix.size()))) return {loss.substr(prefix.size()), true};
  std::string names;
  for (const auto& n : reference_losses(spec.name)) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown loss '" + loss + "' for " + spec.name + ": the losses are " + names);
}

const Tensor* find_output(const std::vector<std::pair<std::string, Tensor>>& outputs, const std::string& name) {
  for (const auto& [n, t] : outputs)
    if (n == name) return &t;
  return nullptr;
}

std::vector<std::pair<std::string, Tensor>> run_forward(ReferenceModel& model, const StateDict& inputs) {
  try {
    return model.forward(inputs);
  } catch (const std::exception& e) {
    throw std::invalid_argument("forward of " + model.spec().name + " failed: " + e.what());
  }
}

}  // namespace

std::vector<std::string> reference_losses(const std::string& model) {
  const ReferenceModelSpec& spec = reference_model_spec(model);
  std::vector<std::string> names;
  for (const auto& [name, _] : spec.losses) names.push_back(name);
  for (const auto& o : spec.outputs) names.push_back("sum_of_" + o.name);
  return names;
}

ReferenceRunResult run_reference(const ReferenceRunOptions& o) {
  ReferenceConfig config = read_reference_config(o.config_path, o.model);
  const ReferenceModelSpec& spec = reference_model_spec(config.model);
  const bool with_grads = !o.loss.empty(), with_jvp = !o.tangents_path.empty();
  LossChoice loss;
  if (with_grads) loss = resolve_loss(spec, o.loss);   // before any file is read: fail fast

  // ---- the parameters the config implies, checked against the files before anything is allocated ----
  std::vector<ParameterShape> expected;
  try {
    expected = reference_parameter_shapes(config);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("config '" + o.config_path + "': " + e.what());
  }
  check_fits_in_memory(expected, o, config.model);
  ReferenceRunResult result;
  result.model = config.model;
  StateDict weights = canonical_parameters(read_tensors(o.weights_path, "weights"), "weights", o.weights_path, config,
                                           result.dropped);
  check_weights_fit(weights, expected, o, config.model);
  StateDict tangents;
  if (with_jvp)
    tangents = checked_tangents(canonical_parameters(read_tensors(o.tangents_path, "tangents"), "tangents",
                                                     o.tangents_path, config, result.dropped),
                                expected, o.tangents_path, o.dtype);

  // ---- the model, with the weights ----
  std::unique_ptr<ReferenceModel> model;
  try {
    model = make_reference_model(config, o.dtype);
    model->module().load_state_dict(weights);   // casts to the compute dtype
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("config '" + o.config_path + "': " + e.what());
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("config '" + o.config_path + "': not enough memory for the " + config.model + " model's " +
                             gigabytes(parameter_bytes(expected, o.dtype)) + " of parameters in " + dtype_name(o.dtype) +
                             ": free memory, or use --dtype float32");
  }

  // ---- inputs ----
  StateDict inputs = checked_inputs(read_tensors(o.inputs_path, "inputs"), spec, o.inputs_path, o.dtype);
  try {
    result.warnings = model->check_inputs(inputs);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("inputs '" + o.inputs_path + "': " + e.what());
  }

  // ---- outputs and the gradient of the loss (reverse mode) ----
  std::vector<Module::NamedTensor> parameters = model->module().named_parameters();
  std::vector<std::pair<std::string, Tensor>> outputs;
  Tensors gradients;
  {
    std::unique_ptr<NoGradGuard> no_grad = with_grads ? nullptr : std::make_unique<NoGradGuard>();
    std::unique_ptr<EnableGradGuard> enable_grad = with_grads ? std::make_unique<EnableGradGuard>() : nullptr;
    outputs = run_forward(*model, inputs);
    if (with_grads) {
      const Tensor* differentiated = find_output(outputs, loss.output);
      if (!differentiated)
        throw std::invalid_argument("--loss " + o.loss + " needs the output '" + loss.output +
                                    "', which these inputs do not give: " + spec.output(loss.output)->doc);
      Tensor scalar = loss.sum ? sum(*differentiated) : *differentiated;
      Tensors leaves;
      for (auto& p : parameters) leaves.push_back(*p.tensor);
      gradients = grad({scalar}, leaves);
    }
  }
  for (auto& [name, tensor] : outputs) result.tensors.insert(name, tensor.detach());
  for (size_t i = 0; i < gradients.size(); ++i) result.tensors.insert("grad." + parameters[i].name, gradients[i].detach());

  // ---- JVP of every output along the tangents (forward mode) ----
  if (with_jvp) {
    NoGradGuard no_grad;
    DualLevel level;
    for (auto& p : parameters)
      if (tangents.contains(p.name)) set_tangent(*p.tensor, tangents.at(p.name));
    for (auto& [name, output] : run_forward(*model, inputs)) {
      Tensor tangent = tangent_of(output);   // undefined: the output does not depend on any tangent
      result.tensors.insert("jvp." + name, tangent.defined() ? kernels::copy(tangent) : Tensor::zeros(output.shape(), output.dtype()));
    }
  }

  result.metadata = {{"generator", "linfuse forward"},
                     {"model", config.model},
                     {"dtype", dtype_name(o.dtype)},
                     {"loss", o.loss},
                     {"config", o.config_path},
                     {"weights", o.weights_path},
                     {"inputs", o.inputs_path},
                     {"tangents", o.tangents_path}};
  return result;
}

}  // namespace linfuse::nn
