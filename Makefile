# linfuse: the two commands README.md starts with are `make run` and `make test`.
# Every target installs what is missing first (Debian packages; idempotent and quiet when present).
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: setup build run test asan bench gradcheck clean

setup:
	@bash scripts/setup.sh
	@bash scripts/fetch_data.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: the study on the small preset (vision and text suites), report in results/small-*/.
# Stages are cached in runs/cache: a second `make run` reuses what is done.
PRESET ?= small
run: build
	@$(BUILD)/linfuse experiment --preset $(PRESET) --suite all --threads $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Debug build with AddressSanitizer and UBSan; runs every test.
asan: setup
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLINFUSE_SANITIZE=ON -DLINFUSE_NATIVE=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

gradcheck: build
	@$(BUILD)/linfuse gradcheck

clean:
	rm -rf $(BUILD) build-asan
