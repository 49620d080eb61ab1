#!/bin/sh
# Installs the Debian packages bpviz needs to build and test.
#   --torch  also python3-torch, to regenerate golden outputs from PyTorch
set -eu
pkgs="cmake gcc make pkg-config libgraphviz-dev graphviz libcmocka-dev librsvg2-bin"
[ "${1:-}" = "--torch" ] && pkgs="$pkgs python3-torch"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
