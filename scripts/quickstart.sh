#!/usr/bin/env bash
# Set up everything fashiongen needs on a fresh Debian machine (as root), then run the demo or the tests.
#   bash scripts/quickstart.sh demo [key=value ...]   # the whole pipeline on the embedded default
#   bash scripts/quickstart.sh test [pytest args ...] # the test suite
# Idempotent: a second run reuses the Debian package, the virtual environment and the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"; shift || true
case "$mode" in demo|test) ;; *) echo "usage: bash scripts/quickstart.sh demo|test [args...]" >&2; exit 2 ;; esac

FMNIST_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
apt_install() {  # install Debian packages only when something is missing
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then apt_install dataset-fashion-mnist; fi
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv python3-pip
if [ "$mode" = test ]; then apt_install chromium; fi  # the run report is checked in a real headless browser

if [ ! -x .venv/bin/python ]; then echo "==> creating .venv"; python3 -m venv .venv; fi
stamp=".venv/.fashiongen-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing fashiongen and its dependencies into .venv (first run: several minutes)"
  log=".venv/pip-install.log"
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2; echo "pip install failed; the whole log is in $log" >&2; exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

if [ "$mode" = demo ]; then
  exec fashiongen demo --config configs/default.yaml "$@"
else
  # Two workers, each test file on one (its module fixtures built once): the slow tests mostly wait on Ray, so two
  # share the 2 cores well. Each worker has its own session Ray and moto server; `-n 0` runs in one process. Files
  # are dealt in collection order, which tests/conftest.py starts with the slowest.
  exec python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
fi
