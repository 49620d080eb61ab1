#!/bin/sh
# Installs the Debian packages bpviz needs to build and test.
# python3-torch: the PyTorch recorder's tests (python/bpviz_torch.py) and the
# golden outputs (tests/torch); --torch, which once added it, is still accepted.
set -eu
# valgrind, clang (libFuzzer) and libxml2-utils (xmllint, to check SVG) serve
# the hardening checks of .ci/run and the tests; poppler-utils (pdffonts,
# pdftoppm) lets test_unix check that PDFs embed fonts and fit the drawing.
pkgs="cmake gcc make pkg-config libgraphviz-dev libsleef-dev libfontconfig1-dev graphviz libcmocka-dev librsvg2-bin valgrind clang libxml2-utils poppler-utils"
# fonts-urw-base35: Nimbus Roman and Nimbus Sans, for the tests of --font
# (a family whose last word pango would read as a style: "Roman")
pkgs="$pkgs fonts-urw-base35"
pkgs="$pkgs python3-torch"
# chromium and node run the HTML player's browser test (tests/browser)
pkgs="$pkgs chromium"
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# playwright-core from npm, as pinned by tests/browser/package-lock.json; it
# drives the chromium package and must never download a browser of its own.
browser="$(dirname "$0")/../tests/browser"
if [ ! -d "$browser/node_modules/playwright-core" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$browser" --no-audit --no-fund --silent
fi
