#!/usr/bin/env python3
"""Damages a journal file in place, as a crash or a bad disk would, for the
corrupted synthetic fixtures (see make.sh).

    corrupt.py truncate FILE   cut the file at 60% of its objects' bytes
    corrupt.py objects FILE    damage three objects about ci-demo-build's
                               second run: a byte of one line's text, the
                               sequence number of another line's entry, and
                               one slot of an entry array
"""
import struct
import sys

DATA, ENTRY, ENTRY_ARRAY = 1, 3, 6
HEADER_SIZE_AT, TAIL_OBJECT_AT = 88, 136
COMPACT = 1 << 4


def objects(data):
    """(offset, type, size) of every object, in file order."""
    at = struct.unpack_from("<Q", data, HEADER_SIZE_AT)[0]
    tail = struct.unpack_from("<Q", data, TAIL_OBJECT_AT)[0]
    while at <= tail:
        kind, size = data[at], struct.unpack_from("<Q", data, at + 8)[0]
        yield at, kind, size
        at += (size + 7) // 8 * 8


def data_object(data, payload):
    """The offset of the data object holding `payload` (uncompressed)."""
    for at, kind, size in objects(data):
        if kind == DATA and data[at + 1] == 0 and payload in data[at : at + size]:
            return at
    sys.exit(f"no data object with {payload!r}")


def entries_with(data, data_offset):
    """Offsets of the entries that have the data object at `data_offset`."""
    compact = struct.unpack_from("<I", data, 12)[0] & COMPACT
    found = []
    for at, kind, size in objects(data):
        if kind != ENTRY:
            continue
        item, first = (4, at + 64) if compact else (16, at + 64)
        for i in range(first, at + size, item):
            offset = struct.unpack_from("<I" if compact else "<Q", data, i)[0]
            if offset == data_offset:
                found.append(at)
    return found


def damage_objects(data):
    text = data_object(data, b"MESSAGE=build 2: step 9 of 12")
    at = data.index(b"step 9", text)
    data[at + 2] = ord("X")  # "stXp 9": the line reads differently
    invocation = data_object(data, b"_SYSTEMD_INVOCATION_ID=000000000000000000000000000000b2")
    run_entries = entries_with(data, invocation)
    victim = run_entries[len(run_entries) // 2]
    struct.pack_into("<Q", data, victim + 16, 0)  # seqnum 0 is never valid
    arrays = [at for at, kind, _ in objects(data) if kind == ENTRY_ARRAY]
    array = arrays[len(arrays) // 2]
    struct.pack_into("<I", data, array + 24, 0xFFFFFFF8)  # first slot: past the file's end


def main(action, path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if action == "truncate":
        header = struct.unpack_from("<Q", data, HEADER_SIZE_AT)[0]
        last = list(objects(data))[-1]
        used = last[0] + last[2]
        data = data[: header + (used - header) * 6 // 10]
    elif action == "objects":
        damage_objects(data)
    else:
        sys.exit(f"unknown action {action}")
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
