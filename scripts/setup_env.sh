#!/usr/bin/env bash
# Creates .venv from uv.lock. Idempotent: with the environment in place and the lock unchanged it
# does nothing and touches no network.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dependency groups: dev and airflow (pyproject's default-groups); SETUP_WITHOUT_AIRFLOW=1
# leaves Airflow out (`pipeline run` and the tests that do not need it work without it).
groups=(); want="default groups"
if [ "${SETUP_WITHOUT_AIRFLOW:-}" = 1 ]; then
  groups=(--no-group airflow); want="without airflow"
fi

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (this machine kind's
# image sets it) nothing else ever writes it, and every process then compiles the ~7,000
# modules it imports from source: importing TensorFlow, TFX and TFMA took 15.8 s, 6.1 s with
# bytecode. Pipeline runs start several such processes (the CLI, Beam workers, the signature
# check, training workers), and so does the test suite.
want="$want, bytecode"
stamp=.venv/.synced-from-lock
if [ -f "$stamp" ] && [ "$stamp" -nt uv.lock ] && [ "$stamp" -nt pyproject.toml ] \
   && [ -x .venv/bin/python ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# uv comes from PyPI.
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv from PyPI" >&2
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

# Python 3.10 (TFX 1.16 declares Requires-Python <3.11): one uv already knows, else the ordinary
# route (uv downloads it), else a pyenv-installed 3.10 (machines without network to uv's host).
py=""
if found=$(UV_PYTHON_DOWNLOADS=never uv python find 3.10 2>/dev/null); then
  py="$found"
elif uv python install 3.10 >/dev/null 2>&1 && found=$(uv python find 3.10 2>/dev/null); then
  py="$found"
elif command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10\.[0-9]+$' | sort -t. -k3 -n -r); do
    if [ -x "$(pyenv prefix "$v")/bin/python3.10" ]; then
      py="$(pyenv prefix "$v")/bin/python3.10"
      break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "setup: no Python 3.10 found and none could be installed (uv python install 3.10)" >&2
  exit 1
fi

echo "setup: creating .venv from uv.lock with $py" >&2
UV_PYTHON_DOWNLOADS=never uv sync --frozen --compile-bytecode --python "$py" "${groups[@]}"
echo "$want" > "$stamp"
