// The text suite's scoring (experiments/text_scoring.h) and its MergeTarget (text_target.cpp): Spearman's rho
// against hand-computed values, score parsing, label scoring through a linearized forward, and a fine-tuned
// state scoring above the pretrained one on a learnable task.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "autodiff/functional.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "experiments/experiment.h"
#include "experiments/suite_common.h"
#include "experiments/text_suite.h"
#include "merge/lora.h"
#include "merge/task_vector.h"
#include "../helpers.h"
#include "nn/t5_generation.h"
#include "peft/finetune.h"

using namespace linfuse;
using namespace linfuse::experiments;
using linfuse::testing::bit_equal;
using linfuse::testing::max_abs_diff;

TEST_CASE("Spearman's rho matches hand-computed values, ties sharing their average rank", "[text_scoring]") {
  // x ranks 1..5; y = 5 6 7 8 7 ranks 1 2 3.5 5 3.5: sum dx dy = 8, sum dx^2 = 10, sum dy^2 = 9.5 -> 8 / sqrt(95)
  // (scipy.stats.spearmanr gives 0.8207826816681233).
  CHECK(spearman_correlation({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}) == Approx(8 / std::sqrt(95.0)).epsilon(1e-12));
  CHECK(spearman_correlation({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}) == Approx(0.8207826816681233).epsilon(1e-12));
  // monotone transforms do not matter; reversal gives -1
  CHECK(spearman_correlation({0.1, 0.5, 0.2, 3.0}, {1, 100, 10, 1000}) == Approx(1.0));
  CHECK(spearman_correlation({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1.0));
  // ties on both sides: x = 1 1 2 3 ranks 1.5 1.5 3 4, y = 2 1 1 3 ranks 3 1.5 1.5 4 (mean 2.5):
  // dx = -1 -1 .5 1.5, dy = .5 -1 -1 1.5 -> sxy = -.5 + 1 - .5 + 2.25 = 2.25, sxx = syy = 4.5 -> 0.5
  CHECK(spearman_correlation({1, 1, 2, 3}, {2, 1, 1, 3}) == Approx(0.5).epsilon(1e-12));
  CHECK(average_ranks({10, 20, 10, 30}) == std::vector<double>{1.5, 3, 1.5, 4});
  // a constant side has no defined correlation: 0, never NaN
  CHECK(spearman_correlation({2.5, 2.5, 2.5}, {1, 2, 3}) == 0.0);
  CHECK_THROWS_WITH(spearman_correlation({1, 2}, {1, 2, 3}), Catch::Contains("2 predictions for 3 gold scores"));
}

TEST_CASE("decoded STS-B answers parse to a number in range, anything else to the middle", "[text_scoring]") {
  CHECK(parse_score("3.4", 0, 5) == Approx(3.4));
  CHECK(parse_score(" 2.0", 0, 5) == Approx(2.0));
  CHECK(parse_score("7", 0, 5) == 5.0);
  CHECK(parse_score("-1", 0, 5) == 0.0);
  CHECK(parse_score("<extra_id_0> the", 0, 5) == 2.5);
  CHECK(parse_score("3.4 <extra_id_0>", 0, 5) == 2.5);
  CHECK(parse_score("", 0, 5) == 2.5);
  CHECK(stsb_class(3.4) == 7);
  CHECK(stsb_class(3.2) == 6);
  CHECK(stsb_class(9) == 10);
}

TEST_CASE("batches truncate inputs keeping eos, candidates know whether their first tokens differ", "[text_scoring]") {
  std::vector<int64_t> a = {5, 6, 7, 8, 1}, b = {9, 1};
  TokenBatch batch = pad_batch({&a, &b}, 0, 4);
  CHECK(batch.ids.to_vector<int64_t>() == std::vector<int64_t>{5, 6, 7, 1, 9, 1, 0, 0});
  CHECK(batch.mask.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 0});
  CHECK(Candidates::from({{4, 1}, {5, 4, 1}}, 0, 1).first_tokens_distinct);
  CHECK_FALSE(Candidates::from({{4, 1}, {4, 5, 1}}, 0, 1).first_tokens_distinct);
  CHECK_THROWS_WITH(Candidates::from({{4, 5}}, 0, 1), Catch::Contains("ending with eos"));
}

namespace {

nn::T5Config tiny_config() {
  nn::T5Config c = nn::tiny_t5_config(40);
  c.d_model = 16;
  c.d_kv = 8;
  c.num_heads = 2;
  c.d_ff = 32;
  c.num_layers = 2;
  c.num_decoder_layers = 2;
  c.dropout_rate = 0;
  return c;
}

}  // namespace

TEST_CASE("label scores through the linearized forward at phi0 equal the plain model's", "[text_scoring]") {
  Generator data(4);
  Tensor ids = data.randint({3, 6}, 2, 40);
  Tensor mask = Tensor::from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0}, {3, 6});
  TokenBatch inputs{ids, mask};
  Candidates distinct = Candidates::from({{5, 9, 1}, {6, 1}, {7, 8, 8, 1}}, 0, 1);
  Candidates shared_first = Candidates::from({{5, 9, 1}, {5, 1}}, 0, 1);
  for (peft::FinetuneMode mode : {peft::FinetuneMode::LLora, peft::FinetuneMode::LinearFull}) {
    Generator init_plain(7), init_linear(7);
    nn::T5ForConditionalGeneration plain_model(tiny_config(), init_plain), linear_model(tiny_config(), init_linear);
    peft::FinetuneConfig config;
    config.mode = mode;
    config.lora.rank = 2;
    config.lora.target_modules = {"q", "v"};
    peft::PreparedModel prepared(linear_model, {"*"}, config);
    plain_model.eval();
    linear_model.eval();
    T5Logits plain = t5_logits(plain_model), inner = t5_logits(linear_model);
    T5Logits linearized = [&](const Tensor& i, const Tensor& m, const Tensor& d, const Tensor& r) {
      return prepared.forward([&] { return inner(i, m, d, r); });
    };
    NoGradGuard no_grad;
    for (const Candidates* candidates : {&distinct, &shared_first}) {
      Tensor through_plain = candidate_scores(plain, inputs, *candidates);
      Tensor through_linearized = candidate_scores(linearized, inputs, *candidates);
      INFO(peft::mode_name(mode) << ", first tokens distinct: " << candidates->first_tokens_distinct);
      CHECK(through_plain.shape() == Shape{3, int64_t(candidates->sequences.size())});
      CHECK(bit_equal(through_plain, through_linearized));
      // the full-sequence form against nn::score_candidates, an independent implementation
      Tensor reference = nn::score_candidates(plain_model, ids, mask, candidates->sequences);
      CHECK(max_abs_diff(candidate_scores(linearized, inputs, *candidates, true), reference) < 1e-5);
    }
    CHECK(classify(linearized, inputs, distinct) == classify(plain, inputs, distinct));
  }
}

TEST_CASE("the answers objective trains the candidates' logits only; the sequence loss pushes every word", "[text_scoring]") {
  Generator data(5);
  TokenBatch inputs{data.randint({4, 6}, 2, 40), Tensor::full({4, 6}, 1, DType::I64)};
  Candidates candidates = Candidates::from({{5, 9, 1}, {6, 1}, {7, 1}}, 0, 1);   // first tokens 5, 6, 7
  const std::vector<int64_t> labels = {0, 2, 1, 2};
  Generator init(8);
  nn::T5ForConditionalGeneration model(tiny_config(), init);
  model.eval();
  T5Logits logits = t5_logits(model);
  auto lm_head_grad = [&]() -> Tensor {
    for (auto& p : model.named_parameters())
      if (p.name == "lm_head.weight") return p.tensor->grad();
    FAIL("the tiny T5 has no lm_head.weight");
    return {};
  };
  auto row_max = [](const Tensor& grad, int64_t row) {
    std::vector<float> g = grad.to_vector<float>();
    const int64_t width = grad.shape()[1];
    double m = 0;
    for (int64_t j = 0; j < width; ++j) m = std::max(m, double(std::fabs(g[size_t(row * width + j)])));
    return m;
  };
  // the loss itself: -mean log softmax over the candidates of their scores
  Tensor loss = answers_loss(logits, inputs, candidates, labels);
  {
    NoGradGuard no_grad;
    std::vector<double> s = candidate_scores(logits, inputs, candidates).to_vector<double>();
    double expected = 0;
    for (size_t b = 0; b < labels.size(); ++b) {
      double top = std::max({s[3 * b], s[3 * b + 1], s[3 * b + 2]}), z = 0;
      for (size_t c = 0; c < 3; ++c) z += std::exp(s[3 * b + c] - top);
      expected += -(s[3 * b + size_t(labels[b])] - top - std::log(z)) / double(labels.size());
    }
    CHECK(loss.item() == Approx(expected).epsilon(1e-5));
  }
  backward(loss);
  Tensor answers_grad = lm_head_grad();
  const double candidate_rows = std::max({row_max(answers_grad, 5), row_max(answers_grad, 6), row_max(answers_grad, 7)});
  REQUIRE(candidate_rows > 1e-4);
  for (int64_t word : {2, 9, 20, 39}) {   // 9: a later token of candidate 0, never scored with distinct first tokens
    INFO("word " << word);
    CHECK(row_max(answers_grad, word) < 1e-6 * candidate_rows);
  }
  // the sequence loss on the same answers moves other words' rows too (they are pushed down)
  for (auto& p : model.named_parameters()) p.tensor->zero_grad();
  std::vector<std::vector<int64_t>> answers;
  for (int64_t label : labels) answers.push_back(candidates.sequences[size_t(label)]);
  std::vector<const std::vector<int64_t>*> rows;
  for (const auto& a : answers) rows.push_back(&a);
  backward(teacher_forced_loss(logits, inputs, pad_batch(rows, 0), 0));
  CHECK(row_max(lm_head_grad(), 20) > 1e-4 * candidate_rows);   // about 7e-4 of it here
}

TEST_CASE("the text merge target scores fine-tuned states in range, with a lower loss than the pretrained one", "[text_suite]") {
  nlohmann::json config = preset_config("smoke")["text"];
  config["tasks"] = {"sst2", "stsb"};
  config["modes"] = {"l-lora", "lora"};
  config["data"] = {{"train", 256}, {"validation", 48}, {"test", 64}, {"instruct", 32}};
  config["pretrain"]["steps"] = 10;
  config["finetune"]["steps"] = 40;
  config["finetune"]["batch_size"] = 16;
  config["finetune"]["learning_rates"]["l-lora"] = 1e-2;
  config["evaluation"] = {{"validation_examples", 48}, {"test_examples", 64}, {"batch_size", 64}};
  auto cache_dir = std::filesystem::temp_directory_path() / ("linfuse_text_suite_" + std::to_string(::getpid()));
  std::filesystem::remove_all(cache_dir);
  {
    StageCache cache(cache_dir);
    std::map<std::string, double> seconds;
    TextSuite suite(config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
    nlohmann::json results = suite.prepare();
    REQUIRE(results["single_task"]["l-lora"].size() == 2);
    CHECK(results["metric"]["stsb"] == "spearman");
    std::unique_ptr<MergeTarget> target = suite.merge_target(peft::FinetuneMode::LLora);
    const int sst2 = 0, stsb = 1;
    double before = target->score(target->initial_state(), sst2, Split::Test);
    double after = target->score(target->finetuned_state(sst2), sst2, Split::Test);
    // 10 pretraining and 40 fine-tuning steps do not reliably learn the task (the teacher-forced loss below
    // does fall): the scores are only checked to be in range and to be the ones fine-tuning recorded.
    INFO("sst2 accuracy: pretrained " << before << ", fine-tuned " << after);
    CHECK((before >= 0 && before <= 1 && after >= 0 && after <= 1));
    CHECK(after == Approx(results["single_task"]["l-lora"]["sst2"].get<double>()).margin(1e-12));
    // the other methods' statistics are finite and shaped like the state
    double stsb_score = target->score(target->finetuned_state(stsb), stsb, Split::Validation);
    CHECK((stsb_score >= -1 && stsb_score <= 1));
    for (int64_t c : target->predict(target->finetuned_state(stsb), stsb, 10)) CHECK((c >= 0 && c <= 10));
    CHECK(target->few_shot_loss(target->finetuned_state(sst2), sst2, 8) < target->few_shot_loss(target->initial_state(), sst2, 8));
    Tensor entropy = target->entropy(target->finetuned_state(sst2), sst2, 0, 4);
    CHECK(std::isfinite(entropy.item()));
    StateDict fisher = target->fisher(sst2, 2);
    CHECK(fisher.names() == target->initial_state().names());

    // Merging a single task: theta0 + 1 * tau is the fine-tuned model, theta0 + 0 * tau the pretrained one; and
    // in weight space, Delta W of the fine-tuned adapter (s B A for lora, its linearization for l-lora, which the
    // network-level linearization turns into f0 + J_W Delta W = f0 + J_(A,B) (A - A0, B - B0)) gives the
    // fine-tuned model's scores. Scores are accuracies on 64 examples; rounding may flip a near-tie, so one
    // example of slack.
    const double one_example = 1.0 / 64 + 1e-12;
    for (peft::FinetuneMode mode : {peft::FinetuneMode::LLora, peft::FinetuneMode::Lora}) {
      INFO(peft::mode_name(mode));
      std::unique_ptr<MergeTarget> m = suite.merge_target(mode);
      merge::TaskVector tau = merge::TaskVector::between(m->finetuned_state(sst2), m->initial_state());
      double finetuned = m->score(m->finetuned_state(sst2), sst2, Split::Test);
      CHECK(m->score(merge::apply(m->initial_state(), tau), sst2, Split::Test) == Approx(finetuned).margin(one_example));
      CHECK(m->score(merge::apply(m->initial_state(), 0.0 * tau), sst2, Split::Test) ==
            Approx(m->score(m->initial_state(), sst2, Split::Test)).margin(1e-12));
      merge::LoraDeltaForm form = mode == peft::FinetuneMode::Lora ? merge::LoraDeltaForm::product : merge::LoraDeltaForm::linearized;
      // "<module>.weight" -> Delta W per LoRA module, as the merge study hands it to score_weight_space
      StateDict weight_delta = merge::lora_weight_delta(m->finetuned_state(sst2), m->initial_state(), m->lora_scaling(), form).tensors();
      REQUIRE(weight_delta.size() > 0);
      CHECK(m->score_weight_space(weight_delta, sst2, Split::Test) == Approx(finetuned).margin(one_example));
      // The scores' JVP on its own, as one pass of jvp_at_initial through scores() gives it: what
      // output_and_score_jvp reads off the outputs' pass instead.
      auto score_jvp_alone = [&](int task) {
        const StateDict& initial = m->initial_state();
        Tensors primals, tangents;
        for (auto& [name, value] : initial) {
          primals.push_back(value);
          tangents.push_back(cast(tau.tensors().at(name), value.dtype()));
        }
        NoGradGuard no_grad;
        auto scores_at = [&](const Tensors& duals) {
          StateDict state;
          size_t i = 0;
          for (auto& [name, value] : initial) state.insert(name, duals[i++]);
          return m->scores(state, task, 4);
        };
        return linfuse::jvp(scores_at, primals, tangents).second;
      };
      // The leakage's forward-mode derivative of the scored logits (sst2: the first decoder step; stsb: every
      // step of its 11 answers) against a central difference, which involves no derivative code. Its error is
      // O(eps^2) for lora (measured: 1.3% at eps 0.1, 0.09% at 0.025, falling 4-fold per halving) and float32
      // rounding alone for the linear l-lora.
      for (int task : {sst2, stsb}) {
        INFO("output JVP on task " << task);
        Tensor jvp = m->output_jvp(tau.tensors(), task, 4);
        const double eps = 0.025;
        Tensor plus = m->outputs(merge::apply(m->initial_state(), eps * tau), task, 4);
        Tensor minus = m->outputs(merge::apply(m->initial_state(), -eps * tau), task, 4);
        REQUIRE(jvp.shape() == plus.shape());
        CHECK(jvp.size(0) == 4);
        CHECK(testing::max_abs_diff(jvp, zeros_like(jvp)) > 1e-4);
        CHECK(testing::relative_error(div(sub(plus, minus), 2 * eps), jvp) < 1e-2);
        // The same for the candidates' scores the centered leakage reads (sst2: 2 answers, stsb: 11), which
        // output_and_score_jvp gives with the outputs' from one pass through the T5: to the bit the outputs' JVP
        // above and the scores' JVP taken alone.
        MergeTarget::OutputJvps both = m->output_and_score_jvp(tau.tensors(), task, 4);
        CHECK(bit_equal(both.outputs, jvp));
        Tensor score_jvp = both.scores;
        CHECK(bit_equal(score_jvp, score_jvp_alone(task)));
        Tensor score_plus = m->scores(merge::apply(m->initial_state(), eps * tau), task, 4);
        Tensor score_minus = m->scores(merge::apply(m->initial_state(), -eps * tau), task, 4);
        REQUIRE(score_jvp.shape() == score_plus.shape());
        CHECK(score_jvp.size(1) == (task == sst2 ? 2 : 11));
        CHECK(testing::max_abs_diff(score_jvp, zeros_like(score_jvp)) > 1e-4);
        CHECK(testing::relative_error(div(sub(score_plus, score_minus), 2 * eps), score_jvp) < 1e-2);
      }
    }
  }
  std::filesystem::remove_all(cache_dir);
}

TEST_CASE("validation-mean calibration ignores an input-independent preference; without it the preference decides", "[text_suite]") {
  nlohmann::json config = preset_config("smoke")["text"];
  config["tasks"] = {"sst2", "stsb"};
  config["modes"] = {"lora"};
  config["data"] = {{"train", 64}, {"validation", 48}, {"test", 64}, {"instruct", 32}};
  config["pretrain"]["steps"] = 10;
  config["finetune"]["steps"] = 2;
  config["evaluation"] = {{"validation_examples", 48}, {"test_examples", 64}, {"batch_size", 32}, {"calibration", "none"}};
  nlohmann::json calibrated_config = config;
  calibrated_config["evaluation"]["calibration"] = "validation_mean";
  auto cache_dir = std::filesystem::temp_directory_path() / ("linfuse_text_calibration_" + std::to_string(::getpid()));
  std::filesystem::remove_all(cache_dir);
  {
    StageCache cache(cache_dir);
    std::map<std::string, double> seconds;
    TextSuite plain(config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
    TextSuite calibrated(calibrated_config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
    plain.prepare();
    calibrated.prepare();
    const int sst2 = 0, stsb = 1;
    auto model = plain.pretrained_copy();
    T5Logits logits = t5_logits(*model);
    // +20 on the logit of sst2's first answer's first token, at every step and for every input
    const TextTaskData& task = plain.tasks()[size_t(sst2)];
    REQUIRE(task.candidates.first_tokens_distinct);
    std::vector<float> bias(size_t(plain.model_config().vocab_size), 0.0f);
    bias[size_t(task.candidates.sequences[0][0])] = 20.0f;
    Tensor bias_row = Tensor::from_vector(bias, {int64_t(bias.size())});
    T5Logits preferring_first = [&](const Tensor& ids, const Tensor& mask, const Tensor& decoder_ids, const Tensor& rows) {
      return add(logits(ids, mask, decoder_ids, rows), bias_row);
    };
    // without calibration the preference answers every balanced test example with the first label: chance
    for (int64_t c : plain.predict(preferring_first, sst2, task.test, 64)) CHECK(c == 0);
    CHECK(plain.evaluate(preferring_first, sst2, Split::Test) == Approx(0.5).margin(1e-12));
    // calibrated, the log-normaliser over the answers and the answer's prior cancel: the same decisions
    // (mathematically; float32 rounding may flip a near tie, hence one example of slack)
    const double one_example = 1.0 / 64 + 1e-12;
    CHECK(calibrated.evaluate(preferring_first, sst2, Split::Test) ==
          Approx(calibrated.evaluate(logits, sst2, Split::Test)).margin(one_example));
    // calibration subtracts a per-answer constant: decisions on the validation inputs it was estimated on spread
    // over both answers unless the model's scores ignore the input
    std::vector<int64_t> decided = calibrated.predict(logits, sst2, task.validation, 48);
    CHECK(std::count(decided.begin(), decided.end(), 0) > 0);
    CHECK(std::count(decided.begin(), decided.end(), 1) > 0);
    double rho = calibrated.evaluate(logits, stsb, Split::Test);
    CHECK((std::isfinite(rho) && rho >= -1 && rho <= 1));

    // A merge target's test scoring reads the prior its validation scoring of the same state measured, and
    // scores exactly what a suite that never saw that state scores with a pass of its own.
    TextSuite fresh(calibrated_config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
    fresh.prepare();
    std::unique_ptr<MergeTarget> remembering = calibrated.merge_target(peft::FinetuneMode::Lora);
    std::unique_ptr<MergeTarget> recomputing = fresh.merge_target(peft::FinetuneMode::Lora);
    const int64_t reads_before = calibrated.remembered_prior_reads();
    for (int t : {sst2, stsb}) {
      const StateDict& state = remembering->finetuned_state(t);
      remembering->score(state, t, Split::Validation);
      CHECK(remembering->score(state, t, Split::Test) == recomputing->score(state, t, Split::Test));
    }
    CHECK(calibrated.remembered_prior_reads() == reads_before + 2);
    CHECK(fresh.remembered_prior_reads() == 0);
    // another state (the pretrained one) has a prior of its own
    CHECK(remembering->score(remembering->initial_state(), sst2, Split::Test) ==
          recomputing->score(recomputing->initial_state(), sst2, Split::Test));
    CHECK(calibrated.remembered_prior_reads() == reads_before + 2);

    // AdaMerging's entropy reads the decisions the suite makes: plain, the entropy of the answers' probabilities;
    // calibrated, of those less their mean over the batch, renormalised, so that a preference for one answer shared
    // by every input of the batch does not change it. Checked against the candidates' scores on the same rows.
    std::unique_ptr<MergeTarget> plain_target = plain.merge_target(peft::FinetuneMode::Lora);
    const StateDict& state = plain_target->finetuned_state(sst2);
    auto entropy_from_scores = [](const Tensor& scores, bool calibrate, double preference) {
      std::vector<double> s = scores.to_vector<double>();   // (8, 2) row-major
      const size_t rows = 8, answers = 2;
      std::vector<double> lp(s.size());
      for (size_t r = 0; r < rows; ++r) {
        s[r * answers] += preference;
        double z = std::log(std::exp(s[r * answers]) + std::exp(s[r * answers + 1]));
        for (size_t c = 0; c < answers; ++c) lp[r * answers + c] = s[r * answers + c] - z;
      }
      if (calibrate) {
        for (size_t c = 0; c < answers; ++c) {
          double prior = 0;
          for (size_t r = 0; r < rows; ++r) prior += lp[r * answers + c] / double(rows);
          for (size_t r = 0; r < rows; ++r) lp[r * answers + c] -= prior;
        }
        for (size_t r = 0; r < rows; ++r) {
          double z = std::log(std::exp(lp[r * answers]) + std::exp(lp[r * answers + 1]));
          for (size_t c = 0; c < answers; ++c) lp[r * answers + c] -= z;
        }
      }
      double h = 0;
      for (double v : lp) h -= std::exp(v) * v / double(rows);
      return h;
    };
    Tensor scores = plain_target->scores(state, sst2, 8);
    REQUIRE(scores.shape() == Shape{8, 2});
    CHECK(plain_target->entropy(state, sst2, 0, 8).item() == Approx(entropy_from_scores(scores, false, 0)).epsilon(1e-4));
    CHECK(remembering->entropy(state, sst2, 0, 8).item() == Approx(entropy_from_scores(scores, true, 0)).epsilon(1e-4));
    // the property the calibrated form is for: a shared preference of 3 nats moves the plain entropy, not this one
    CHECK(entropy_from_scores(scores, true, 3.0) == Approx(entropy_from_scores(scores, true, 0)).epsilon(1e-9));
    CHECK(std::abs(entropy_from_scores(scores, false, 3.0) - entropy_from_scores(scores, false, 0)) > 1e-3);
  }
  std::filesystem::remove_all(cache_dir);
}

TEST_CASE("a missing data set is an error naming the Debian package, not a crash", "[text_suite]") {
  auto cache_dir = std::filesystem::temp_directory_path() / ("linfuse_text_missing_" + std::to_string(::getpid()));
  StageCache cache(cache_dir);
  std::map<std::string, double> seconds;
  nlohmann::json config = preset_config("smoke")["text"];
  config["fortunes_dir"] = "/nonexistent/fortunes";
  TextSuite no_fortunes(config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
  CHECK_THROWS_WITH(no_fortunes.prepare(), Catch::Contains("apt-get install fortunes"));
  config = preset_config("smoke")["text"];
  config["words_file"] = "/nonexistent/words";
  TextSuite no_words(config, 0, SuiteContext{cache, [](const std::string&) {}, seconds});
  CHECK_THROWS_WITH(no_words.prepare(), Catch::Contains("apt-get install wamerican"));
  std::filesystem::remove_all(cache_dir);
}

TEST_CASE("a task counts as learned above chance plus two standard errors of a chance-level test score", "[suite_common]") {
  // binary accuracy on 96 examples: 0.5 + 2 sqrt(0.25 / 96)
  CHECK(experiments::learned_threshold(2, 96) == Approx(0.5 + 2 * std::sqrt(0.25 / 96)));
  CHECK(experiments::learned_threshold(2, 96) == Approx(0.6021).epsilon(1e-3));
  // ten classes on 100 examples: 0.1 + 2 * 0.03
  CHECK(experiments::learned_threshold(10, 100) == Approx(0.16));
  // Spearman's rho (classes 0) on 96 examples: 2 / sqrt(95)
  CHECK(experiments::learned_threshold(0, 96) == Approx(2 / std::sqrt(95.0)));
  // more examples, a tighter threshold; never below chance
  CHECK(experiments::learned_threshold(3, 1000) < experiments::learned_threshold(3, 100));
  CHECK(experiments::learned_threshold(3, 1000) > 1.0 / 3);
}

TEST_CASE("a stage's final loss is the mean of the last tenth of its losses", "[suite_common]") {
  std::vector<double> losses;
  for (int i = 1; i <= 20; ++i) losses.push_back(i);
  CHECK(experiments::final_loss_of(losses) == Approx(19.5));    // the last 2 of 20
  CHECK(experiments::final_loss_of({3.0, 1.0}) == Approx(1.0)); // at least one
  CHECK(experiments::final_loss_of({}) == 0.0);
}
