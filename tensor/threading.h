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

// Runs job(0) .. job(count - 1), up to num_threads() of them at once, each on a thread of its own inside a
// oneTBB arena of one thread; with one thread (or one job) they run in order on the calling thread.
// Why: small models use two cores poorly within one run (the small preset's T5 fine-tunes only 1.25x faster
// with 2 threads than with 1), while independent runs side by side use them fully. Since no result depends
// on the thread count (the chunking above is fixed), every job computes the bits it computes alone.
// Jobs must not share mutable state (autodiff's tape is per thread). The first exception a job throws is
// rethrown here once every started job has ended; jobs not yet started are then skipped.
void run_concurrently(int64_t count, const std::function<void(int64_t)>& job);

}  // namespace linfuse
