#!/usr/bin/env bash
# Byte-identity check of `synth` between two netcarve binaries: for every built-in profile, every
# container and seeds 1 and 7 (plus --endpoints 200, --no-pae on x86, the range's last --build,
# --move-time-field tcp-listener and --zero-time-field udp-endpoint), both binaries write their
# files (ISF included) and the SHA-256 of every file, the file list, stderr and exit code must
# match. Exit 0 when nothing differs, 1 otherwise.
#
#   scripts/synth_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]
#
# PROFILES="win7-x64 win10-19041-x64" limits the check to those profiles (a quick run).
#
# Each case's outputs are deleted once compared; a differing case is kept in WORK_DIR (default: a
# fresh directory under /tmp, removed when nothing differs).
set -euo pipefail

base=${1:?usage: synth_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]}
new=${2:?usage: synth_identity.sh BASE_BINARY NEW_BINARY [WORK_DIR]}
work=${3:-$(mktemp -d /tmp/synth-identity.XXXXXX)}
containers=(raw crashdump bitmap elf lime vmware hiberfil)
mkdir -p "$work"

# Writes one case with one binary into $1 and records exit code, stderr (with the output
# directory's name taken out) and the hash of every file it wrote.
run() {
    local dir=$1 bin=$2
    shift 2
    local rc=0
    mkdir -p "$dir"
    "$bin" synth "$@" --out "$dir/out" --isf-dir "$dir/out/isf" >"$dir/stdout" 2>"$dir/stderr" \
        || rc=$?
    echo "$rc" >"$dir/rc"
    sed -i "s|$dir/out|OUT|g" "$dir/stdout" "$dir/stderr"
    if [ -d "$dir/out" ]; then
        (cd "$dir/out" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$dir/sums"
    else
        : >"$dir/sums"
    fi
    rm -rf "$dir/out"
}

cases=0
files=0
differ=0
check() {
    local name=$1
    shift
    local dir="$work/$name"
    run "$dir.base" "$base" "$@"
    run "$dir.new" "$new" "$@"
    cases=$((cases + 1))
    files=$((files + $(wc -l <"$dir.base/sums")))
    local same=1
    for part in rc stdout stderr sums; do
        cmp -s "$dir.base/$part" "$dir.new/$part" || same=0
    done
    if [ "$same" = 1 ]; then
        rm -rf "$dir.base" "$dir.new"
    else
        differ=$((differ + 1))
        echo "DIFFER: $name ($*) kept in $dir.{base,new}"
    fi
}

"$base" profile list | awk -v only="${PROFILES:-}" '
    BEGIN { n = split(only, names, " "); for (i = 1; i <= n; i++) keep[names[i]] = 1 }
    NR > 1 && (n == 0 || $1 in keep) { print $1, $2, $4 }' >"$work/profiles"
while read -r profile arch builds; do
    for container in "${containers[@]}"; do
        for seed in 1 7; do
            check "$profile-$container-$seed" --profile "$profile" --container "$container" \
                --seed "$seed"
        done
    done
    check "$profile-endpoints" --profile "$profile" --endpoints 200
    if [ "$arch" = x86 ]; then
        for container in raw crashdump hiberfil; do
            check "$profile-nopae-$container" --profile "$profile" --container "$container" --no-pae
        done
    fi
    if [ "${builds#*-}" != "$builds" ]; then
        check "$profile-build" --profile "$profile" --build "${builds#*-}"
    fi
    check "$profile-move-listener" --profile "$profile" --move-time-field tcp-listener
    check "$profile-zero-udp" --profile "$profile" --zero-time-field udp-endpoint
done <"$work/profiles"
rm -f "$work/profiles"
rmdir "$work" 2>/dev/null || true # empty unless outputs differ
echo "$cases cases, $files files compared, $differ cases differ"
[ "$differ" = 0 ]
