#!/bin/sh
# systemd-analyze verify of the example jobs (contrib/systemd/ci-test-*)
# as installed, with the prefix drop-in directory ci-test-.service.d/ that
# gives every job its defaults, and their security exposure as systemd
# rates it offline (to be well under the 9.6 of a unit without them).
set -eu
max=${MAX_EXPOSURE:-5.0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp -R contrib/systemd/ci-test-*.service contrib/systemd/ci-test-.service.d "$dir/"
mkdir -p "$dir/root/etc/systemd/system"
cp -R contrib/systemd/ci-test-*.service contrib/systemd/ci-test-.service.d "$dir/root/etc/systemd/system/"
for unit in ci-test-hello.service ci-test-fail.service ci-test-deploy@main.service; do
    SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "$unit"
    level=$(systemd-analyze security --offline=yes --root="$dir/root" --no-pager "$unit" |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [ -n "$level" ] || { echo "verify-jobs: $unit: no exposure level" >&2; exit 1; }
    awk -v l="$level" -v m="$max" 'BEGIN { exit !(l < m) }' ||
        { echo "verify-jobs: $unit: exposure $level, want under $max" >&2; exit 1; }
    echo "verify-jobs: $unit: exposure $level"
done
