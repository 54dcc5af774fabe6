# linfuse: the two commands README.md starts with are `make run` and `make test`.
# Every target installs what is missing first (Debian packages; idempotent and quiet when present).
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: setup build build-linfuse run test asan bench gradcheck vision-base clean

setup:
	@bash scripts/setup.sh
	@bash scripts/fetch_data.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Only the linfuse program (no tests, no benchmarks): what `make run` needs, in about half the build time.
build-linfuse: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target linfuse

# The main job: the study on the small preset (vision and text suites), report in results/small-*/.
# Stages are cached in runs/cache: a second `make run` reuses what is done.
PRESET ?= small
run: build-linfuse
	@$(BUILD)/linfuse experiment --preset $(PRESET) --suite all --threads $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Debug build with AddressSanitizer and UBSan; runs every test but the two end-to-end smoke studies, which are
# far too slow in a Debug+ASan build (the nn tests alone take about 20 minutes there, on 2 cores).
asan: setup
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLINFUSE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -E experiments
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 LINFUSE_DATA_DIR=$(CURDIR)/data ./test_experiments "~[smoke]"

# Performance: micro-benchmarks of the dominant kernels (Google Benchmark), then one training step of the
# reference workload (DESIGN.md) per mode and evaluation at 1 and 2 threads, side by side with PyTorch
# (torch_ref.py, python3-torch; the two programs' steps alternate one by one, bench/torch_lockstep.py) and
# OpenBLAS sgemm; the table also goes to $(BUILD)/bench.md.
# The PyTorch peer lives beside the repository (../shared/bench/torch_ref.py, DESIGN.md); TORCH_REF=none
# benchmarks linfuse alone.
TORCH_REF ?= $(abspath ../shared/bench/torch_ref.py)
BENCH_STEPS ?= 12
BENCH_ROUNDS ?= 3
bench: build
	@bash scripts/setup.sh bench
	@if [ "$(TORCH_REF)" != none ] && [ ! -r "$(TORCH_REF)" ]; then \
	  echo "make bench: the PyTorch peer $(TORCH_REF) is missing. Put torch_ref.py there (it runs on Debian's"; \
	  echo "python3-torch, which scripts/setup.sh bench installs), pass TORCH_REF=/path/to/torch_ref.py, or"; \
	  echo "TORCH_REF=none to benchmark linfuse alone."; exit 2; fi
	@if [ -x $(BUILD)/micro_bench ]; then LINFUSE_THREADS=1 $(BUILD)/micro_bench --benchmark_min_time=0.1; \
	 else echo "micro_bench not built (libbenchmark-dev missing)"; fi
	@$(BUILD)/train_step_bench --threads 1,2 --steps $(BENCH_STEPS) --rounds $(BENCH_ROUNDS) --torch "$(filter-out none,$(TORCH_REF))" --markdown $(BUILD)/bench.md

# The small preset's shipped pretrained CLIP (checkpoints/vision-small, experiments/base_checkpoint.h): its
# pretraining is longer than `make run` affords. Regenerates the folder bit for bit (at any thread count) from an
# empty stage cache: cache keys hold the configuration, not the code, so a cached pretraining of older code would
# be copied as it is.
vision-base: build-linfuse
	@rm -rf $(BUILD)/vision-base-cache
	@$(BUILD)/linfuse experiment --preset small --suite vision --threads 2 --seed 0 --cache $(BUILD)/vision-base-cache --write-base checkpoints/vision-small

gradcheck: build
	@$(BUILD)/linfuse gradcheck

clean:
	rm -rf $(BUILD) build-asan
