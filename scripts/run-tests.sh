#!/usr/bin/env bash
# Runs the test suite with Node's test runner (TypeScript through tsx). Arguments narrow it to files.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
export NODE_ENV=test
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-1}" --test-timeout="${TEST_TIMEOUT_MS:-600000}" --test-reporter=spec "${files[@]}"
