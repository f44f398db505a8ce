#!/usr/bin/env bash
# `npm test`: installs what is missing (scripts/setup.sh), type-checks, then runs every test:
# the TypeScript suites with Node's test runner, and the Python agent's suite with pytest.
# Integration and end-to-end tests start their own Postgres, JupyterHub and kernels on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The S3 blob store's tests start a real S3 server (MinIO, built once into .cache/bin).
bash scripts/install-s3-server.sh
npx tsc -p tsconfig.json --noEmit
echo "typecheck: ok"

# Test files run one at a time: each integration file starts real servers, and the machine may
# have two cores.
mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
node --import tsx --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"

.venv/bin/python -m pytest -q test/agent
