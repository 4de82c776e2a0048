#!/usr/bin/env bash
# The test command (README, .ci/run): installs dependencies, builds every layer with AddressSanitizer
# and UBSan into build-test/, runs every test that needs no GPU, then the safetensors fuzzer for a
# bounded time. GPU tests (ctest label `gpu`) run on a GPU machine with tools/gpu/run_all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${AOQ_FUZZ_SECONDS:-60}

tools/setup.sh
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAOQ_SANITIZE=ON
cmake --build build-test -j "$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-test -LE 'gpu|fuzz' --output-on-failure -j "$jobs" --timeout 600

echo "fuzz: safetensors for ${fuzz_seconds}s under ASan+UBSan"
build-test/tests/fuzz/fuzz_safetensors_driver --seconds "$fuzz_seconds" --seed "${AOQ_FUZZ_SEED:-$RANDOM}" \
  --crash-dir build-test tests/fuzz/corpus/safetensors tests/data/golden tests/data/st
