#pragma once
// One thread setting for the whole process. oneTBB owns the threads: our loops and the tiles of every
// GEMM run in TBB tasks, and OpenBLAS is kept single-threaded inside them. (DESIGN.md let a large GEMM use
// OpenBLAS's own threads; those do not give the same bits with 1 and 2 threads, so linfuse tiles instead.)
#include <cstdint>
#include <functional>

namespace linfuse {

void set_num_threads(int threads);   // >= 1; also the default from LINFUSE_THREADS, else hardware concurrency
int num_threads();

// Runs body(begin, end) over [0, n) in chunks of exactly `grain` items (the last one shorter). The chunking
// never depends on the thread count, so per-chunk results combined in chunk order are deterministic.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace linfuse
