#!/usr/bin/env bash
# The README's first command: installs dependencies, builds aoq (Release) into build/, then starts
# aoqd on the best device found (the embedded `tiny` model with synthetic weights when there is no
# GPU or checkpoint) and serves real client processes (tools/demo.sh), printing `aoqctl status`.
#   tools/quickstart.sh [N_CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec tools/demo.sh build "${1:-4}"
