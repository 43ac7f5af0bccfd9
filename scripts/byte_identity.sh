#!/usr/bin/env bash
# Byte-identity check between two netcarve binaries: synthesizes an image of every built-in
# profile in every container (with BASE, so both binaries read the same bytes), runs both on
# `scan --format json`, `scan --include-corrupt --format json` and `info --format json`, and
# compares stdout, stderr and exit code. Exit 0 when nothing differs, 1 otherwise.
#
#   scripts/byte_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]
#
# Images are written one profile at a time to WORK_DIR (default: a fresh directory under /tmp)
# and deleted as soon as both binaries have read them; differing outputs are kept there (the
# directory is removed when nothing differs).
set -euo pipefail

base=${1:?usage: byte_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]}
new=${2:?usage: byte_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]}
work=${3:-$(mktemp -d /tmp/byte-identity.XXXXXX)}
containers=(raw crashdump bitmap elf lime vmware)
mkdir -p "$work"

# Runs one binary and records its stdout, stderr and exit code under the prefix $1.
run() {
    local prefix=$1
    shift
    local rc=0
    "$@" >"$prefix.out" 2>"$prefix.err" || rc=$?
    echo "$rc" >"$prefix.rc"
}

total=0
differ=0
profiles=$("$base" profile list | awk 'NR > 1 { print $1 }')
for profile in $profiles; do
    for container in "${containers[@]}"; do
        dir="$work/img-$profile-$container"
        if ! "$base" synth --profile "$profile" --container "$container" --seed 1 --out "$dir" \
            >/dev/null 2>"$work/synth.err"; then
            echo "synth failed: $profile $container" >&2
            cat "$work/synth.err" >&2
            exit 2
        fi
        image=$(find "$dir" -maxdepth 1 -name 'memory.*' ! -name '*.vmss' | head -n 1)
        for mode in scan scan-corrupt info; do
            case $mode in
            scan) args=(scan "$image" --format json) ;;
            scan-corrupt) args=(scan "$image" --include-corrupt --format json) ;;
            info) args=(info "$image" --format json) ;;
            esac
            out="$work/out-$profile-$container-$mode"
            run "$out.base" "$base" "${args[@]}"
            run "$out.new" "$new" "${args[@]}"
            total=$((total + 1))
            same=1
            for part in out err rc; do
                cmp -s "$out.base.$part" "$out.new.$part" || same=0
            done
            if [ "$same" = 1 ]; then
                rm -f "$out".base.* "$out".new.*
            else
                differ=$((differ + 1))
                echo "DIFFER: $profile $container $mode (kept in $out.{base,new}.{out,err,rc})"
            fi
        done
        rm -rf "$dir"
    done
done
rm -f "$work/synth.err"
rmdir "$work" 2>/dev/null || true # empty unless outputs differ
echo "$total outputs, $differ differ"
[ "$differ" = 0 ]
