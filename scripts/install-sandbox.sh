#!/usr/bin/env bash
# Install what `twin serve`'s sandbox needs: bubblewrap (every step and function runs in
# it), slirp4netns and iproute2 (the private network of network-allowed steps).
# Best effort, quiet and idempotent: does nothing when all are there, or when this is not
# root on a machine with apt-get (the sandbox tests then skip, with the reason).
set -u
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "${missing[*]} not installed (need root and apt-get): sandbox tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
(apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1)) \
    || echo "${missing[*]} could not be installed: sandbox tests will skip" >&2
exit 0
