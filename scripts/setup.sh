#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, and nothing twice:
#   - the Node dependencies from package-lock.json (npm ci), when node_modules is missing or stale;
#   - a project-local Python virtual environment (.venv) with the pinned requirements.txt.
# Re-running it is cheap: each step is skipped when its stamp matches its lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

node_stamp=$(stamp_of package-lock.json)
if [ ! -f node_modules/.resume-stamp ] || [ "$(cat node_modules/.resume-stamp)" != "$node_stamp" ]; then
  echo "setup: installing Node dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$node_stamp" > node_modules/.resume-stamp
fi

# The system python3 may be anything (pyenv, Debian's); the venv pins what runs inside it.
PYTHON=${RESUME_PYTHON:-python3}
py_stamp=$(stamp_of requirements.txt)
if [ ! -f .venv/.resume-stamp ] || [ "$(cat .venv/.resume-stamp)" != "$py_stamp" ]; then
  echo "setup: creating .venv with the pinned Python requirements (about a minute the first time)"
  rm -rf .venv
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  # JupyterLab runs small CommonJS Node scripts from inside the venv; without a package.json of its
  # own, Node would apply this repository's "type": "module" to them and they would crash.
  echo '{"type": "commonjs"}' > .venv/package.json
  echo "$py_stamp" > .venv/.resume-stamp
fi
