#!/usr/bin/env bash
# Installs what the versus-pytorch benchmark needs from Debian, idempotently and quietly: nothing
# happens when all of it is already there. Not a test dependency (CI never runs it); the bench suite
# runs it before it starts and, when it cannot install (not root), prints the apt-get line instead.
#
#   python3-torch          PyTorch 1.13.1 (Debian's /usr/bin/python3, not a pyenv one), for bench/pytorch/clip_reference.py
#   libopenblas0-pthread   OpenBLAS: Debian's torch links libblas.so.3, which resolves to the
#                          reference BLAS (about 36× slower on clip-tiny) unless OpenBLAS's
#                          directory comes first on LD_LIBRARY_PATH; the reference does that itself.
set -euo pipefail

need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
[ -f /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || [ -f /usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3 ] \
  || need+=(libopenblas0-pthread)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the versus-pytorch benchmark needs these Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  # Another apt client may hold the lock for a while (unattended upgrades): wait for it.
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
