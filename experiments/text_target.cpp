// The text suite's MergeTarget: the tiny T5 in one fine-tuning mode, scoring merged states task by task.
// Everything reads the model through the mode's forward (PreparedModel::forward / forward_with around a
// function returning the logits), so the linearized modes are evaluated as f0 + J (phi - phi0).
#include <cmath>
#include <optional>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/gram_recorder.h"
#include "experiments/prepared_merge_target.h"
#include "experiments/text_suite.h"
#include "tensor/kernels.h"

namespace linfuse::experiments {

namespace {

// A pretrained T5 prepared for a mode.
struct PreparedT5 {
  std::unique_ptr<nn::T5ForConditionalGeneration> model;
  std::unique_ptr<peft::PreparedModel> prepared;
  T5Logits plain;

  PreparedT5(TextSuite& suite, const peft::FinetuneConfig& config) {
    model = suite.pretrained_copy();
    prepared = std::make_unique<peft::PreparedModel>(*model, std::vector<std::string>{"*"}, config);
    model->eval();
    plain = t5_logits(*model);
  }
  // The logits through the mode's forward, with the trainable state currently loaded.
  T5Logits logits() {
    return [this](const Tensor& ids, const Tensor& mask, const Tensor& decoder_ids, const Tensor& rows) {
      return prepared->forward([&] { return plain(ids, mask, decoder_ids, rows); });
    };
  }
  // The same with the trainable part holding `state` (differentiable with respect to its tensors).
  T5Logits logits_with(const StateDict& state) {
    return [this, &state](const Tensor& ids, const Tensor& mask, const Tensor& decoder_ids, const Tensor& rows) {
      return prepared->forward_with(state, [&] { return plain(ids, mask, decoder_ids, rows); });
    };
  }
};

class TextMergeTarget : public PreparedMergeTarget<TextSuite, PreparedT5> {
 public:
  using PreparedMergeTarget::PreparedMergeTarget;

  // The fingerprints name the scored model, so that a calibrated test scoring reads the prior its validation
  // scoring measured (TextSuite::evaluate).
  double score(const StateDict& state, int t, Split split) override {
    model_.prepared->load_trainable_state(state);
    const std::optional<StateFingerprint> model = model_key(state, false);
    return suite_.evaluate(model_.logits(), t, split, model ? &*model : nullptr);
  }

  double score_weight_space(const StateDict& delta, int t, Split split) override {
    const std::optional<StateFingerprint> model = model_key(delta, true);
    return suite_.evaluate(weight_space_model_with(delta).logits(), t, split, model ? &*model : nullptr);
  }

  std::vector<int64_t> predict(const StateDict& state, int t, int64_t examples) override {
    model_.prepared->load_trainable_state(state);
    const std::optional<StateFingerprint> model = model_key(state, false);
    return suite_.predict(model_.logits(), t, suite_.tasks()[size_t(t)].validation, examples, model ? &*model : nullptr);
  }

  double few_shot_loss(const StateDict& state, int t, int64_t examples) override {
    model_.prepared->load_trainable_state(state);
    const TokenizedSplit& split = suite_.tasks()[size_t(t)].validation;
    std::vector<int64_t> rows = first_rows(split, examples);
    NoGradGuard no_grad;
    return teacher_forced_loss(model_.logits(), suite_.input_batch(split, rows), suite_.target_batch(split, rows), start_id()).item();
  }

  // Mean entropy of the model's choice among the task's answers (label words; for stsb the scores 0.0 ..
  // 5.0 at half steps), renormalised over them; the same scores classification ranks by. Under validation_mean
  // calibration the choice is the calibrated one: each answer's log-probability less its mean over the batch
  // (batch calibration, Zhou et al. 2024, the prior estimated on the inputs at hand), renormalised. Why: the
  // plain entropy also falls when the merged model prefers one answer for every input, a move the calibrated
  // predictions do not see; calibrated, only a sharper input-dependent choice lowers it, and the gradient
  // flows through the prior, so a constant shift of an answer has none.
  Tensor entropy(const StateDict& state, int t, int64_t batch_index, int64_t batch_size) override {
    const TextTaskData& task = suite_.tasks()[size_t(t)];
    int64_t n = std::min<int64_t>(suite_.eval_examples(Split::Validation), int64_t(task.validation.inputs.size()));
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < batch_size; ++i) rows.push_back((batch_index * batch_size + i) % n);
    Tensor scores = candidate_scores(model_.logits_with(state), suite_.input_batch(task.validation, rows), task.candidates);
    Tensor log_p = log_softmax(scores, -1);   // (B, C)
    if (suite_.calibrated()) log_p = log_softmax(sub(log_p, mean(log_p, {0}, true)), -1);
    return neg(mean(sum(mul(exp(log_p), log_p), {-1})));
  }

  // Per-example gradients of log p(y | x), the model's whole-sequence log-likelihood of an answer y drawn
  // from its own (answer-renormalised) prediction for x.
  StateDict fisher(int t, int64_t examples) override {
    const TextTaskData& task = suite_.tasks()[size_t(t)];
    T5Logits logits = model_.logits();
    int64_t n = std::min<int64_t>(examples, int64_t(task.train.inputs.size()));
    return mean_squared_gradients(t, n, [&](int64_t i, Generator& sample) {
      TokenBatch x = suite_.input_batch(task.train, i, i + 1);
      std::vector<double> p;
      {
        NoGradGuard no_grad;
        p = softmax(candidate_scores(logits, x, task.candidates), -1).to_vector<double>();   // (1, C)
      }
      size_t y = draw_class(p, sample.next_uniform());
      Candidates drawn = Candidates::from({task.candidates.sequences[y]}, start_id(), suite_.tokenizer().eos_id());
      return neg(sum(candidate_scores(logits, x, drawn, /*full_sequence=*/true)));
    });
  }

  // read(logits, inputs, candidates, regression) (scored_logits, candidate_scores, or both side by side) under
  // `state` on the first `examples` validation inputs of task t, batch by batch, the rows concatenated (no graph
  // is recorded: the derivatives of these are taken in forward mode).
  using ValidationRead = Tensor (*)(const T5Logits&, const TokenBatch&, const Candidates&, bool);
  Tensor over_validation(const StateDict& state, int t, int64_t examples, ValidationRead read) {
    const TextTaskData& task = suite_.tasks()[size_t(t)];
    int64_t n = std::min<int64_t>(examples, int64_t(task.validation.inputs.size()));
    NoGradGuard no_grad;
    const T5Logits logits = model_.logits_with(state);
    std::vector<Tensor> batches;
    for (int64_t b = 0; b < n; b += suite_.eval_batch())
      batches.push_back(read(logits, suite_.input_batch(task.validation, b, std::min(n, b + suite_.eval_batch())),
                             task.candidates, task.regression));
    return concat(batches, 0);
  }

  // The decoder logits the task's scoring reads (scored_logits: the first step for label words with distinct
  // first tokens, every candidate's teacher-forced steps otherwise and for stsb, whose expected score reads the
  // whole answers), one row per validation input.
  Tensor outputs(const StateDict& state, int t, int64_t examples) override {
    return over_validation(state, t, examples, scored_logits);
  }

  Tensor output_jvp(const StateDict& direction, int t, int64_t examples) override {
    return jvp_at_initial(direction, [&](const StateDict& state) { return outputs(state, t, examples); });
  }

  // The candidates' scores (log p of each answer: its first token's, or the whole sequence's for stsb and for
  // label words that share a first token), one row per validation input: what the prediction compares.
  Tensor scores(const StateDict& state, int t, int64_t examples) override {
    return over_validation(state, t, examples, candidate_scores);
  }

  // Both derivatives from one JVP through the T5 (scored_readout reads the logits and the scores off one
  // decoder pass): each batch's scored logits (B, K) and scores (B, C) side by side, (B, K + C), the tangent
  // split after. Concatenating and slicing copy the numbers, so these are the bits of two JVPs apart.
  OutputJvps output_and_score_jvp(const StateDict& direction, int t, int64_t examples) override {
    ValidationRead both = [](const T5Logits& logits, const TokenBatch& inputs, const Candidates& candidates, bool full_sequence) {
      ScoredReadout read = scored_readout(logits, inputs, candidates, full_sequence);
      return concat({read.logits, read.scores}, 1);   // (B, K + C)
    };
    Tensor change = jvp_at_initial(direction, [&](const StateDict& state) { return over_validation(state, t, examples, both); });
    const int64_t count = int64_t(suite_.tasks()[size_t(t)].candidates.sequences.size()), k = change.size(1) - count;
    return {slice(change, 1, 0, k), slice(change, 1, k, k + count)};   // (N, K), (N, C)
  }

  // Inputs of the Linear layers whose weights are in the state, on training examples with their targets
  // teacher-forced (so the decoder's layers see the answers they were trained on).
  StateDict grams(int t, int64_t examples) override {
    model_.prepared->load_trainable_state(finetuned_state(t));
    std::vector<std::string> modules = plain_linear_modules(*model_.model);
    GramRecording recording(*model_.model, modules);
    const TokenizedSplit& split = suite_.tasks()[size_t(t)].train;
    int64_t n = std::min<int64_t>(examples, int64_t(split.inputs.size()));
    NoGradGuard no_grad;
    for (int64_t b = 0; b < n; b += suite_.eval_batch()) {
      std::vector<int64_t> rows;
      for (int64_t i = b; i < std::min(n, b + suite_.eval_batch()); ++i) rows.push_back(i);
      teacher_forced_loss(model_.logits(), suite_.input_batch(split, rows), suite_.target_batch(split, rows), start_id());
    }
    return recording.grams();
  }

 private:
  int64_t start_id() const { return suite_.model_config().decoder_start_token_id; }
  // The fingerprint of the model a state (or a weight-space delta) makes in this mode, when the scoring is calibrated
  // and so has a prior to reuse; none otherwise (nothing to hash for). The salt tells the modes apart (the same
  // numbers in two modes are two models) and a mode's states from its weight-space deltas.
  std::optional<StateFingerprint> model_key(const StateDict& state, bool weight_space) const {
    if (!suite_.calibrated()) return std::nullopt;
    return state_fingerprint(state, 2 * uint64_t(mode_) + (weight_space ? 1 : 0));
  }

  static std::vector<int64_t> first_rows(const TokenizedSplit& split, int64_t examples) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < std::min<int64_t>(examples, int64_t(split.inputs.size())); ++i) rows.push_back(i);
    return rows;
  }
};

}  // namespace

std::unique_ptr<MergeTarget> TextSuite::merge_target(peft::FinetuneMode mode) {
  return std::make_unique<TextMergeTarget>(*this, mode);
}

}  // namespace linfuse::experiments
