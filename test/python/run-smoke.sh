#!/usr/bin/env bash
# Python smoke test of the jsii-pacmak wheel: installs dist/python/*.whl into a fresh
# virtualenv with the pinned aws-cdk-lib / constructs / pytest (test/python/requirements.txt)
# and runs the pytest suite in test/python. Exits with pytest's exit code.
# Build the wheel first with the package:python task (jsii-pacmak -v --target python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VENV=.smoke-venv
PYTHON="${PYTHON:-python3}"

shopt -s nullglob
wheels=(dist/python/*.whl)
shopt -u nullglob
if [ "${#wheels[@]}" -eq 0 ]; then
  echo "run-smoke.sh: no wheel in $ROOT/dist/python/*.whl; build it first with the package:python task (jsii-pacmak -v --target python)" >&2
  exit 1
fi
if [ "${#wheels[@]}" -gt 1 ]; then
  echo "run-smoke.sh: more than one wheel in $ROOT/dist/python (${wheels[*]}); remove the stale ones and rebuild with the package:python task" >&2
  exit 1
fi
wheel="${wheels[0]}"
echo "run-smoke.sh: testing $wheel"

# The npm tarball (also embedded in the wheel) must hold only what users need: anything else
# (a virtualenv, test output) would ship to every user.
if ! ls dist/js/*.tgz >/dev/null 2>&1; then
  echo "run-smoke.sh: no npm tarball in dist/js to check; run 'npx projen package:js' (the build does) first" >&2
  exit 1
fi
unexpected=$(tar tzf dist/js/*.tgz | grep -vE '^package/(lib/|assets/|schemas/|node_modules/|package\.json$|README\.md$|API\.md$|LICENSE$|\.jsii$)' || true)
if [ -n "$unexpected" ]; then
  echo "run-smoke.sh: the npm package contains unexpected files (add them to npmignore in .projenrc.ts):" >&2
  echo "$unexpected" | head -20 >&2
  exit 1
fi
echo "run-smoke.sh: npm package contents OK ($(tar tzf dist/js/*.tgz | wc -l) files, $(du -h dist/js/*.tgz | cut -f1))"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r test/python/requirements.txt "$wheel"

# .gitignore (projen-managed) does not ignore .pytest_cache/ or __pycache__/, so write neither.
# Keep pytest's exit code explicit: 1 = failed tests, 5 = no tests collected; both are
# non-zero, so both fail the task.
rc=0
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest test/python -q -p no:cacheprovider || rc=$?
exit "$rc"
