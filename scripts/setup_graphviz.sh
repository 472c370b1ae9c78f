#!/usr/bin/env bash
# Graphviz's `dot`, which `pipeline lineage --output FILE.svg|.png` runs to draw a chain
# (Debian's graphviz package). Idempotent: with `dot` on PATH it does nothing and touches no
# network. SETUP_WITHOUT_GRAPHVIZ=1 skips it (the lineage commands then print text, JSON and
# DOT, and refuse an image with one line saying so).
set -euo pipefail

say() { echo "setup-graphviz: $*" >&2; }

if command -v dot >/dev/null 2>&1 || [ "${SETUP_WITHOUT_GRAPHVIZ:-}" = 1 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "error: no apt-get here: install Graphviz (its \`dot\`) with this system's package" \
      "manager, or set SETUP_WITHOUT_GRAPHVIZ=1"
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    say "error: installing Debian's graphviz needs root (apt-get install graphviz), or set" \
        "SETUP_WITHOUT_GRAPHVIZ=1"
    exit 1
  fi
fi
say "installing Debian's graphviz (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# From the package lists already on the machine first; refreshed only when that fails.
if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends graphviz >/dev/null; then
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi
command -v dot >/dev/null 2>&1 || { say "error: graphviz installed but no dot on PATH"; exit 1; }
say "$(dot -V 2>&1)"
