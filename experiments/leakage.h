#pragma once
// Cross-task leakage, first order: how far a task vector moves the outputs on another task's inputs, relative
// to how far it moves its own task's, in the tangent space of the initial model:
//
//   change(tau, s) = mean over the first n validation inputs x of task s of rms(J f_s(x; state0) tau)
//   L[t][s]        = change(tau_t, s) / change(tau_t, t)
//
// f_s(x) are the K_s logits task s is scored with (MergeTarget::outputs: its head's class logits for vision,
// the decoder logits its scoring reads for text), rms(v) = ||v||_2 / sqrt(K_s), J the Jacobian with respect to
// the mode's trainable state at the initial state (theta0, or phi0), tau_t the task vector of task t.
// Why the root mean square and not ||.||_2 itself: tasks read different numbers of logits (10 digit classes
// against 4 positions; one decoder step for sst2 against every step of 11 answers for stsb), and ||.||_2 grows
// with sqrt(K) even when every logit moves alike (stsb would read as 6 times "leakier"); the ratio of root
// mean squares compares the move per logit. When every task reads the same number of logits the two agree.
// For linear-full, f_lin is exactly linear in phi, so change(tau_t, s) is how far task t's fine-tuned model
// moved task s's logits; for the other modes it is the first-order part of that move (lora: s tau_B A0 x,
// B0 being 0).
// L[t][s] near 0: the tangent kernel separates the tasks, and adding tau_t to a merge leaves task s alone;
// near 1: tau_t moves task s's outputs as far as its own, interference a merge of the vectors inherits.
//
// Centered: the same ratio on the C numbers the prediction compares, g_s(x) (vision: the head's logits, g = f;
// text: the candidates' scores log p(answer | x); MergeTarget::output_and_score_jvp), with each input's mean
// over them taken out first,
//
//   centered(tau, s) = mean over x of rms(J g_s(x) tau - mean_c (J g_s(x) tau)_c),
//
// because a prediction (the arg max, or a softmax expectation as stsb's, over g_s) does not change when all of
// them move alike: a task vector that lifts every score of task s together leaks in L but not in the centered
// L, which counts only the part of the move that can change a decision.
#include <cstdint>
#include <nlohmann/json.hpp>

#include "experiments/merge_study.h"
#include "experiments/merge_target.h"

namespace linfuse::experiments {

// change(direction, task) above, and its centered form, on the first `examples` validation inputs of `task`.
struct OutputChange {
  double rms = 0;            // change(direction, task)
  double centered_rms = 0;   // centered(direction, task)
};
OutputChange first_order_change(MergeTarget& target, const StateDict& direction, int task, int64_t examples);

// {"matrix": L, "centered": centered L} (tasks x tasks in task order; the diagonal is 1). A task vector that does
// not move its own task's outputs (change 0) leaves nothing to divide by, and a non-finite change no number to
// write: then the result is an empty object, with a log line. "centered" alone is left out when a task vector
// moves its own task's logits only all alike (a centered change of 0).
nlohmann::json leakage_matrix(MergeTarget& target, int64_t examples, const StudyLog& log);

}  // namespace linfuse::experiments
