#!/usr/bin/env bash
# The one test command (README and CI run exactly this): installs what the tests need, builds, type-checks,
# then runs every unit and end-to-end test with node's test runner. Needs root (the lab hosts use netns + nspawn).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (sudo npm test): the lab hosts need network namespaces and systemd-nspawn" >&2; exit 2; }

bash scripts/dev-tools.sh

if [ ! -d node_modules ] || [ ! node_modules/.package-lock.json -nt package-lock.json ]; then npm ci --no-audit --no-fund; fi
npm run --silent build
npx tsc --noEmit -p .
# Every shell script in the repository (by extension or by its #! line): the host scripts run as root on sites.
mapfile -t shell_scripts < <({ git ls-files '*.sh'; git ls-files -z | xargs -0 awk 'FNR == 1 && /^#!.*[/ ](ba)?sh$/ { print FILENAME } { nextfile }'; } | sort -u)
shellcheck "${shell_scripts[@]}"

# A lab left by a crashed run would block the end-to-end tests; the lab helper clears it too, this is belt and braces.
trap 'bash test/lab/hostlab.sh down >/dev/null 2>&1 || true' EXIT

shopt -s nullglob globstar
files=(test/unit/**/*.test.ts test/e2e/**/*.test.ts)
[ $# -gt 0 ] && files=("$@")
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
