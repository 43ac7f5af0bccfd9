#!/bin/sh
# Rewrites testdata/win7-x64 and testdata/win10-19041-x64 with what `netcarve synth` writes now.
set -e
cd "$(dirname "$0")/.."
NETCARVE_BLESS=1 cargo test --test synth_samples
