#!/usr/bin/env bash
# `make test`: the whole suite in two passes, both always run; fails if either failed.
#  1. The modules that run pipelines, train or execute notebooks, two at a time (pytest-xdist,
#     one module per worker): each is mostly one busy core (TFX, Beam in_memory, imports), so on
#     2 cores two side by side take as long as one alone (measured: 95 s and 106 s together,
#     94 s and 98 s alone).
#  2. The fast tests, and the `serial` ones, alone: heartbeats, silence bounds and kills aimed
#     by time under a neighbour's load would measure the neighbour.
# TEST_WORKERS=N changes the first pass's workers (1: no parallelism); extra arguments go to both.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
heavy="(e2e or slow) and not serial"

rc=0
"$py" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile -m "$heavy" "$@" || rc=$?
"$py" -m pytest -m "not ($heavy)" "$@" || { code=$?; [ "$rc" -ne 0 ] || rc=$code; }
exit "$rc"
