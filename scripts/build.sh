#!/usr/bin/env bash
# `npm run build [outDir]`: compiles src/, activities/ and workflows/ to CommonJS JavaScript in outDir
# (default dist/, inside the repo so node_modules resolve), copies the demo page's static files, and
# bundles the workflow code into <outDir>/workflow-bundle.js (src/bundle-workflows.ts). The production
# image runs the result with plain node (Dockerfile); tsx is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
rm -rf "$out"
npx tsc -p tsconfig.build.json --outDir "$out"
cp -r src/api/demo "$out/src/api/demo"
node "$out/src/bundle-workflows.js"
