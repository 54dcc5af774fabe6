#include "nn/t5_generation.h"

#include <stdexcept>
#include <utility>

#include "autodiff/ops.h"
#include "autodiff/tape.h"

namespace linfuse::nn {
namespace {

// Puts a model in eval mode for a scope and restores every module's own mode afterwards (a model may be
// partly in eval mode, e.g. a frozen backbone, and must come back exactly as it was).
class EvalScope {
 public:
  explicit EvalScope(Module& model) : model_(model), model_was_training_(model.is_training()) {
    for (auto& [_, module] : model.named_modules()) modes_.emplace_back(module, module->is_training());
    model.eval();
  }
  ~EvalScope() {
    model_.train(model_was_training_);
    for (auto& [module, training] : modes_) module->train(training);
  }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  Module& model_;
  bool model_was_training_;
  // Parents come before children in named_modules(), so restoring in this order leaves each child with its
  // own recorded mode (Module::train recurses into children).
  std::vector<std::pair<std::shared_ptr<Module>, bool>> modes_;
};

void check_inputs(const Tensor& input_ids, const Tensor& attention_mask, const char* op) {
  if (!input_ids.defined() || input_ids.dtype() != DType::I64 || input_ids.dim() != 2)
    throw std::invalid_argument(std::string("[") + op + "] input_ids must be int64 (B, S), got " +
                                (input_ids.defined() ? input_ids.describe() : std::string("undefined")));
  if (attention_mask.defined() && attention_mask.shape() != input_ids.shape())
    throw std::invalid_argument(std::string("[") + op + "] attention_mask " + attention_mask.describe() +
                                " must match input_ids " + input_ids.describe());
}

}  // namespace

Tensor greedy_generate(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                       int64_t max_new_tokens) {
  check_inputs(input_ids, attention_mask, "greedy_generate");
  if (max_new_tokens < 1)
    throw std::invalid_argument("[greedy_generate] max_new_tokens must be at least 1, got " + std::to_string(max_new_tokens));
  const T5Config& config = model.config();
  EvalScope eval(model);
  NoGradGuard no_grad;
  const int64_t batch = input_ids.size(0);
  Tensor encoder_hidden = model.encode(input_ids, attention_mask);   // (B, S, D)

  // prefixes (B, 1 + steps), row-major, starting with the decoder start token
  std::vector<int64_t> prefixes(size_t(batch), config.decoder_start_token_id);
  std::vector<bool> finished(size_t(batch), false);
  int64_t length = 1;
  while (length <= max_new_tokens) {
    Tensor logits = model.decode(Tensor::from_vector(prefixes, {batch, length}), encoder_hidden, attention_mask);
    std::vector<double> last = select(logits, 1, length - 1).to_vector<double>();   // (B, V)
    const int64_t vocab = logits.size(-1);
    std::vector<int64_t> grown;
    grown.reserve(size_t(batch * (length + 1)));
    bool all_finished = true;
    for (int64_t b = 0; b < batch; ++b) {
      int64_t token = config.pad_token_id;
      if (!finished[b]) {
        token = 0;
        for (int64_t v = 1; v < vocab; ++v)
          if (last[b * vocab + v] > last[b * vocab + token]) token = v;
        finished[b] = token == config.eos_token_id;
      }
      all_finished = all_finished && finished[b];
      grown.insert(grown.end(), prefixes.begin() + b * length, prefixes.begin() + (b + 1) * length);
      grown.push_back(token);
    }
    prefixes = std::move(grown);
    ++length;
    if (all_finished) break;
  }
  // drop the start token: (B, length - 1)
  std::vector<int64_t> generated;
  for (int64_t b = 0; b < batch; ++b)
    generated.insert(generated.end(), prefixes.begin() + b * length + 1, prefixes.begin() + (b + 1) * length);
  return Tensor::from_vector(generated, {batch, length - 1});
}

Tensor score_candidates(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                        const std::vector<std::vector<int64_t>>& candidates) {
  check_inputs(input_ids, attention_mask, "score_candidates");
  const T5Config& config = model.config();
  const int64_t batch = input_ids.size(0), count = (int64_t)candidates.size();
  if (count == 0) throw std::invalid_argument("[score_candidates] needs at least one candidate");
  // Each candidate's targets: its tokens, then eos.
  std::vector<std::vector<int64_t>> targets;
  int64_t longest = 0;
  for (int64_t c = 0; c < count; ++c) {
    std::vector<int64_t> t = candidates[c];
    for (int64_t id : t)
      if (id < 0 || id >= config.vocab_size)
        throw std::invalid_argument("[score_candidates] candidate " + std::to_string(c) + " has token " +
                                    std::to_string(id) + " outside the vocabulary [0, " + std::to_string(config.vocab_size) + ")");
    if (t.empty() || t.back() != config.eos_token_id) t.push_back(config.eos_token_id);
    longest = std::max<int64_t>(longest, (int64_t)t.size());
    targets.push_back(std::move(t));
  }

  EvalScope eval(model);
  NoGradGuard no_grad;
  Tensor encoder_hidden = model.encode(input_ids, attention_mask);   // (B, S, D)
  // Pair (b, c) is row b * C + c: repeat each example C times.
  std::vector<int64_t> example_of_row, labels;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 0; c < count; ++c) {
      example_of_row.push_back(b);
      for (int64_t t = 0; t < longest; ++t) labels.push_back(t < (int64_t)targets[c].size() ? targets[c][t] : -100);
    }
  Tensor rows = Tensor::from_vector(example_of_row, {batch * count});
  Tensor label_ids = Tensor::from_vector(labels, {batch * count, longest});   // (B*C, L), -100 after the end
  Tensor logits = model.decode(model.shift_right(label_ids), index_select(encoder_hidden, 0, rows),
                               attention_mask.defined() ? index_select(attention_mask, 0, rows) : Tensor());   // (B*C, L, V)
  Tensor log_probs = log_softmax(logits, -1);
  std::vector<int64_t> gather_ids = labels;
  std::vector<double> valid(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    valid[i] = labels[i] == -100 ? 0.0 : 1.0;
    if (labels[i] == -100) gather_ids[i] = 0;
  }
  Tensor token_log_probs = gather(log_probs, 2, Tensor::from_vector(gather_ids, {batch * count, longest, 1}));   // (B*C, L, 1)
  Tensor kept = mul(reshape(token_log_probs, {batch * count, longest}),
                    cast(Tensor::from_vector(valid, {batch * count, longest}), log_probs.dtype()));
  return reshape(sum(kept, {1}), {batch, count});
}

Tensor classify_by_likelihood(T5ForConditionalGeneration& model, const Tensor& input_ids, const Tensor& attention_mask,
                              const std::vector<std::vector<int64_t>>& candidates) {
  Tensor scores = score_candidates(model, input_ids, attention_mask, candidates);   // (B, C)
  const int64_t batch = scores.size(0), count = scores.size(1);
  std::vector<double> s = scores.to_vector<double>();
  std::vector<int64_t> predicted(size_t(batch), 0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t c = 1; c < count; ++c)
      if (s[b * count + c] > s[b * count + predicted[b]]) predicted[b] = c;
  return Tensor::from_vector(predicted, {batch});
}

}  // namespace linfuse::nn
