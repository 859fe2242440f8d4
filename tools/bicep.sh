#!/usr/bin/env bash
# npm run infra:build — compiles infra/main.bicep to ARM JSON and lints it with the real Bicep CLI.
#
# The CLI comes from NuGet (Azure.Bicep.CommandLine.linux-x64, pinned below) through `dotnet restore` of a tiny
# project with a PackageDownload item, into .cache/bicep/ (git-ignored): nothing is installed globally.
# Output: .cache/bicep/out/main.json (test/unit/infra/bicep-consistency.test.ts reads it when present).
# Fails on any compiler or linter error, and on any warning: bicepconfig.json raises the linter rules to errors,
# and a compiler warning (BCPxxx) that no rule level covers fails here. Exceptions are written in the Bicep
# next to the line they excuse (`#disable-next-line <rule> // reason`) or in bicepconfig.json with a reason.
# Without .NET (a laptop): `az bicep build --file infra/main.bicep` and `az bicep lint --file infra/main.bicep`
# use the same bicepconfig.json.
set -euo pipefail
cd "$(dirname "$0")/.."

BICEP_VERSION=0.49.2
CACHE=.cache/bicep
PACKAGE=azure.bicep.commandline.linux-x64
BICEP="$CACHE/pkgs/$PACKAGE/$BICEP_VERSION/tools/bicep"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "infra:build needs the .NET SDK (dotnet) to fetch the Bicep CLI from NuGet; it is not installed." >&2
  echo "Without .NET: az bicep build --file infra/main.bicep && az bicep lint --file infra/main.bicep" >&2
  exit 3
fi

if [ "$(uname -sm)" != "Linux x86_64" ] || ! dotnet --list-sdks | grep -q '^10\.'; then
  echo "infra:build fetches the linux-x64 Bicep CLI with a net10.0 project: it needs the .NET 10 SDK on Linux x86_64" >&2
  echo "(found $(uname -sm)). Elsewhere: az bicep build --file infra/main.bicep && az bicep lint --file infra/main.bicep" >&2
  exit 3
fi

if [ ! -x "$BICEP" ]; then
  mkdir -p "$CACHE/fetch"
  cat >"$CACHE/fetch/bicep-fetch.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$BICEP_VERSION]" /></ItemGroup>
</Project>
XML
  dotnet restore "$CACHE/fetch/bicep-fetch.csproj" --packages "$CACHE/pkgs" --nologo --verbosity quiet
  chmod +x "$BICEP"
fi
"$BICEP" --version

# Run one Bicep command; fail if it fails or prints any diagnostic (a warning the config left at "warning", or
# a compiler warning).
run() {
  local log
  log=$(mktemp)
  if ! "$BICEP" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bicep $1 failed" >&2
    exit 1
  fi
  if grep -E ' : (Warning|Error) ' "$log" >/dev/null; then
    cat "$log" >&2
    rm -f "$log"
    echo "bicep $1 reported diagnostics: fix them, or allow-list one with its reason" >&2
    exit 1
  fi
  cat "$log"
  rm -f "$log"
}

rm -rf "$CACHE/out"
run build infra/main.bicep --outdir "$CACHE/out"
run lint infra/main.bicep
# What the template was compiled from: the consistency test skips a template older than the sources.
find infra asa bicepconfig.json -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1 >"$CACHE/out/sources.sha256"
echo "infra:build: $CACHE/out/main.json compiled; build and lint clean (Bicep $BICEP_VERSION)"
