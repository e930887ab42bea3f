#!/usr/bin/env bash
# The test command (README's second command; .ci/run calls exactly this). Installs what the tests
# need, builds once, runs every test project and ends with one "N passed, N failed" line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
scripts/ensure-deps.sh --test
scripts/ensure-helm.sh
export OMP_WAIT_POLICY=PASSIVE DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
dotnet build DistClip.sln -c Release -nologo -v q -clp:ErrorsOnly
status=0
# One test assembly at a time (-m:1): several of them start real worker processes, sshd and
# Prometheus, and on two cores their timeouts are fairer measured one suite at a time.
dotnet test DistClip.sln -c Release --no-build -nologo -m:1 "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
