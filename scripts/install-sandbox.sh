#!/usr/bin/env bash
# Install bubblewrap, the sandbox `twin serve` runs every step and function in.
# Best effort, quiet and idempotent: does nothing when bwrap is already there, or when
# this is not root on a machine with apt-get (the sandbox tests then skip, with the reason).
set -u
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bubblewrap is not installed (need root and apt-get): sandbox tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
(apt-get install -y -q bubblewrap >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)) \
    || echo "bubblewrap could not be installed: sandbox tests will skip" >&2
exit 0
