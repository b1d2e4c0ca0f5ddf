#!/bin/sh
# Makes the synthetic journal fixtures (tests/data/journals/synthetic-*)
# from entries.py's export streams with systemd-journal-remote, as root
# (each writer runs in its own mount namespace, with /etc/machine-id bound
# to the host it imitates, so the files' headers carry that machine id).
#
#   JR252=…/systemd-journal-remote JR254=…/systemd-journal-remote sh make.sh
#
# JR252: Debian 12's systemd-journal-remote 252 (needs libmicrohttpd12);
# JR254: bookworm-backports' 254 with its libsystemd-shared-254.so on
# LD_LIBRARY_PATH. Neither need be installed: `apt-get download` and
# `dpkg -x` are enough. File ids are random, so a new run makes new bytes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# write WRITER MACHINE_ID PART FILE [ENV…] [-- journal-remote options]
write() {
  writer=$1 machine=$2 part=$3 file=$4
  shift 4
  echo "$machine" > "$work/machine-id.$machine"
  python3 "$here/entries.py" "$part" > "$work/$part.export"
  # shellcheck disable=SC2016 # expanded by the inner shell
  env "$@" unshare -m sh -c 'mount --bind "$1" /etc/machine-id && shift && exec "$@"' sh \
    "$work/machine-id.$machine" "$writer" --split-mode=none --output="$work/new.journal" "$work/$part.export"
  mv "$work/new.journal" "$file"
}

# fixture NAME WRITER [ENV…]: host A's two boots (an archived file and the
# active one) and host B's file, each compressed with zstd.
fixture() {
  name=$1 writer=$2
  shift 2
  dir="$work/$name"
  mkdir -p "$dir"
  write "$writer" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa host-a-boot-1 "$dir/system@a1-0000000000000001-00060dd7d8e34000.journal" "$@"
  write "$writer" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa host-a-boot-2 "$dir/system.journal" "$@"
  write "$writer" bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb host-b "$dir/remote-ci-runner-b.journal" "$@"
  rm -rf "${out:?}/${name:?}"
  mkdir -p "$out/$name"
  for f in "$dir"/*; do
    zstd -q -19 "$f" -o "$out/$name/$(basename "$f").zst"
  done
}

fixture synthetic-v252-jenkins-regular-zstd "$JR252" SYSTEMD_JOURNAL_KEYED_HASH=0 SYSTEMD_JOURNAL_COMPACT=0
fixture synthetic-v252-keyed-compact-zstd "$JR252"
fixture synthetic-v254-keyed-compact-xz "$JR254" SYSTEMD_JOURNAL_COMPRESS=XZ
fixture synthetic-v254-jenkins-regular-lz4 "$JR254" SYSTEMD_JOURNAL_COMPRESS=LZ4 SYSTEMD_JOURNAL_KEYED_HASH=0 SYSTEMD_JOURNAL_COMPACT=0
fixture synthetic-v254-keyed-regular-uncompressed "$JR254" SYSTEMD_JOURNAL_COMPRESS=NONE SYSTEMD_JOURNAL_COMPACT=0

# The damaged ones: a copy of an intact fixture with one file damaged.
# damaged NAME FROM ACTION FILE [NEW_NAME]
damaged() {
  name=$1 from=$2 action=$3 file=$4 new=${5:-$4}
  rm -rf "${out:?}/${name:?}" "${work:?}/${name:?}"
  mkdir -p "$out/$name" "$work/$name"
  cp "$out/$from"/*.zst "$out/$name/"
  rm "$out/$name/$file.zst"
  zstd -q -d "$out/$from/$file.zst" -o "$work/$name/$new"
  python3 "$here/corrupt.py" "$action" "$work/$name/$new"
  zstd -q -19 "$work/$name/$new" -o "$out/$name/$new.zst"
}

damaged synthetic-corrupt-objects synthetic-v252-keyed-compact-zstd objects system.journal
# As journald leaves a file it found unclean (renamed to *.journal~).
damaged synthetic-corrupt-truncated synthetic-v254-keyed-compact-xz truncate system.journal system@a2-dirty.journal~
