#!/usr/bin/env bash
# The test command (README, .ci/run): installs dependencies, builds every layer with AddressSanitizer
# and UBSan into build-test/, runs every test that needs no GPU, then the safetensors fuzzer for a
# bounded time (every parser). GPU tests (ctest label `gpu`) run on a GPU machine with tools/gpu/run_all.sh.
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

# Every parser's fuzz target under ASan+UBSan: safetensors for AOQ_FUZZ_SECONDS (60 s by default),
# the others for half of that. A crash leaves its input in build-test/crash-<target>-<seed>.bin.
seed=${AOQ_FUZZ_SEED:-$RANDOM}
fz=build-test/tests/fuzz
cx=tests/fuzz/corpus
fuzz() { # target seconds seed-dirs...
  local t=$1 s=$2
  shift 2
  echo "fuzz: $t for ${s}s (seed $seed)"
  "$fz/fuzz_${t}_driver" --seconds "$s" --seed "$seed" --crash-dir build-test "$@"
}
fuzz safetensors "$fuzz_seconds" $cx/safetensors tests/data/golden tests/data/st
fuzz config $((fuzz_seconds / 2)) $cx/config
fuzz tokenizer $((fuzz_seconds / 2)) $cx/tokenizer
fuzz proto $((fuzz_seconds / 2)) $cx/proto
fuzz hfconfig $((fuzz_seconds / 2)) $cx/hfconfig tests/data/fixture/config.json tests/data/fixture/generation_config.json
