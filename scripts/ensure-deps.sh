#!/usr/bin/env bash
# Installs what DistClip needs from Debian, idempotently and quietly: nothing happens when all of it
# is already there. Used by ./coordinator, ./test.sh and CI.
set -euo pipefail

need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "DistClip needs these Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
