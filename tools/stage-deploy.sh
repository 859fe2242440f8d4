#!/usr/bin/env bash
# npm run package (azd runs it after `npm run build`, azure.yaml `dist: .deploy`): stages the folder azd zips and
# deploys to the function app. Only what the Functions host runs: the compiled app (dist/src), host.json,
# package.json and production node_modules (npm ci --omit=dev). Without it azd zipped the project folder with
# node_modules as installed for development (azurite, vitest, eslint, typescript, the Cosmos server...).
# Measured on this repository (issue 15): see README "Deploy to Azure".
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE=.deploy
[ -f dist/src/index.js ] || { echo "stage-deploy: dist/src/index.js missing: run npm run build first" >&2; exit 1; }

rm -rf "$STAGE"
mkdir -p "$STAGE/dist"
cp -R dist/src "$STAGE/dist/src"
cp host.json package.json package-lock.json "$STAGE/"
# Production dependencies exactly as locked; no install scripts run.
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
# The deployed package.json: what the host reads (type, main, engines, dependencies); no scripts, no devDependencies.
node -e '
const fs = require("node:fs");
const file = process.argv[1];
const { name, version, type, main, engines, dependencies } = JSON.parse(fs.readFileSync(file, "utf8"));
fs.writeFileSync(file, JSON.stringify({ name, version, private: true, type, main, engines, dependencies }, null, 2) + "\n");
' "$STAGE/package.json"
rm -f "$STAGE/package-lock.json"
# azd honours the service folder's .funcignore instead of its defaults (which may leave node_modules out): keep
# everything staged except source maps and type declarations.
printf '%s\n' '*.js.map' '*.d.ts' >"$STAGE/.funcignore"
echo "stage-deploy: $STAGE staged ($(du -sh "$STAGE" | cut -f1))"
