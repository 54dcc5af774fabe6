#pragma once
// Everything merging offers, in one include: task vectors, the merging methods, LoRA spaces and analyses.
#include "merge/analysis.h"
#include "merge/averaging.h"
#include "merge/dare.h"
#include "merge/fisher.h"
#include "merge/lora.h"
#include "merge/regmean.h"
#include "merge/task_vector.h"
#include "merge/ties.h"
