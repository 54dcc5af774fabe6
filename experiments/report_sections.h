#pragma once
// The pieces of report.md and the CSV files, each built from the typed results (report_results.h).
// Every piece is markdown text ending with a blank line; a section with nothing to show is a one-line note.
#include <string>
#include <vector>

#include "experiments/report.h"
#include "experiments/report_plots.h"
#include "experiments/report_results.h"

namespace linfuse::experiments::report {

// report_tables.cpp: one suite's sections
std::string suite_overview_section(const SuiteResults& suite);  // model, tasks, zero-shot, single-task, modes
std::string merged_section(const SuiteResults& suite);          // headline tables, then one part per method
// report_headline.cpp: the top of merged_section (suite.merged not empty): per method x mode, the merged test
// average beside zero-shot and single-task, the retained gain G (report_gain.h), the normalized score and the
// hyperparameters; for the vision suite, the paper's values for comparison.
std::string merged_headline(const SuiteResults& suite);
std::string num_tasks_section(const SuiteResults& suite, const PlotSet& plots);
std::string cosine_section(const SuiteResults& suite, const PlotSet& plots);
std::string cross_task_section(const SuiteResults& suite, const PlotSet& plots);
std::string disentanglement_section(const SuiteResults& suite, const PlotSet& plots);
// report_diagnostics.cpp: why merging keeps or loses the gains. First-order leakage of the task vectors (a
// note when absent); the linear probe of the pretrained features and the domain similarity against the
// cross-task damage (vision; "" when absent).
std::string leakage_section(const SuiteResults& suite);
std::string scaling_section(const SuiteResults& suite);
std::string linear_probe_section(const SuiteResults& suite);
std::string domain_similarity_section(const SuiteResults& suite);

// report_csv.cpp: the CSV files, in results.json's units (fractions), one header line each.
std::string single_task_csv(const ReportResults& results);      // one row per suite/mode/task, with standard errors
// One row per suite/method/mode/space/task, with the task's standard error and the merged model's retained gain G.
std::string merged_csv(const ReportResults& results);
std::string num_tasks_csv(const ReportResults& results);        // one row per sweep point
std::string cosine_csv(const ReportResults& results);           // one row per suite/mode/matrix/task pair
std::string cross_task_csv(const ReportResults& results);       // one row per suite/mode/task pair
std::string disentanglement_csv(const ReportResults& results);  // one row per grid (mean errors)

// report_claims.cpp: the claims evaluated on typed results (evaluate_claims parses, then calls this).
std::vector<ClaimVerdict> evaluate_claims(const ReportResults& results);

}  // namespace linfuse::experiments::report
