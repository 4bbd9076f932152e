#!/usr/bin/env bash
# System packages the test suite needs beyond Python wheels. Idempotent; needs root (or sudo).
set -euo pipefail
need=()
# (each feature that needs a Debian package adds a line: command -v X >/dev/null || need+=(pkg))
command -v chromium >/dev/null || need+=(chromium)  # tests/viewer/test_serve.py: the viewer in a real browser
command -v gdal2tiles.py >/dev/null || need+=(gdal-bin)  # tests/integration/test_benchmarks.py: vs gdal2tiles
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
