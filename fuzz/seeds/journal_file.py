#!/usr/bin/env python3
"""Makes the seeds of the journal_file fuzz target: small real journal
files, written by systemd-journal-remote from export text, into
fuzz/seeds/journal_file/. Root (a 16 MiB tmpfs in a private mount
namespace: journald's writer sizes its hash table from the file system, and
on a small one it takes its least, 2047 buckets). Each file is cut after its
last object (arena size set to match), then checked: journalctl --verify.

  mixed    a unit's lines, another unit's line, pid 1's messages about the
           unit, a line of the unit that names UNIT= but is not pid 1
  many     62 entries of the unit, so that its entry arrays chain
  boots    two boots, the wall clock going back across them, a binary
           MESSAGE (newline, 0xff, NUL)
  big      a MESSAGE stored compressed (zstd), a long one not
  plain    as mixed, without the compact format
  unkeyed  as mixed, neither compact nor with the keyed hash
"""
import os
import struct
import subprocess
import sys
import tempfile

BOOT1 = '0123456789abcdef0123456789abcdef'
BOOT2 = 'fedcba9876543210fedcba9876543210'
RUN = '8677056ddd1a4b2f83a5660a4a4c1c38'
STARTING = '7d4958e842da4a758f6c1cdc7b36dcc5'
FAILED = '98e322203f7a4ed290d09fe03c09fe15'
DONE = '7ad2d189f7e94e70a38c781354912448'
T = 1795394165000000


def entry(rt, mono, boot, fields):
    out = f'__REALTIME_TIMESTAMP={rt}\n__MONOTONIC_TIMESTAMP={mono}\n_BOOT_ID={boot}\n_HOSTNAME=h\n'.encode()
    for k, v in fields:
        if isinstance(v, bytes):
            out += k.encode() + b'\n' + struct.pack('<Q', len(v)) + v + b'\n'
        else:
            out += f'{k}={v}\n'.encode()
    return out + b'\n'


def own(rt, mono, boot, msg, pid=4242, unit='ci-test-a.service'):
    return entry(rt, mono, boot, [('_PID', pid), ('_SYSTEMD_UNIT', unit), ('_SYSTEMD_INVOCATION_ID', RUN), ('MESSAGE', msg)])


def manager(rt, mono, boot, msg, mid, extra=()):
    fields = [('_PID', 1), ('_UID', 0), ('UNIT', 'ci-test-a.service'), ('MESSAGE_ID', mid), ('INVOCATION_ID', RUN)]
    return entry(rt, mono, boot, fields + [('MESSAGE', msg), *extra])


def mixed():
    return (manager(T, 1000000, BOOT1, 'Starting ci-test-a.service...', STARTING)
            + own(T + 10000, 1010000, BOOT1, 'hello from the job')
            + own(T + 15000, 1015000, BOOT1, 'secret of another unit', pid=777, unit='ssh.service')
            + own(T + 20000, 1020000, BOOT1, 'second line')
            + entry(T + 25000, 1025000, BOOT1, [('_PID', 4242), ('UNIT', 'ci-test-a.service'),
                                                ('_SYSTEMD_UNIT', 'ci-test-a.service'),
                                                ('MESSAGE', 'spoofed manager message from the job')])
            + manager(T + 30000, 1030000, BOOT1, 'ci-test-a.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED',
                      FAILED, [('UNIT_RESULT', 'exit-code'), ('EXIT_STATUS', 3)]))


def many():
    out = manager(T, 1000, BOOT1, 'Starting ci-test-a.service...', STARTING)
    for i in range(60):
        out += own(T + 10 * (i + 1), 1000 + 10 * (i + 1), BOOT1, f'line {i}')
        if i % 7 == 0:
            out += own(T + 10 * (i + 1) + 5, 1005 + 10 * (i + 1), BOOT1, f'other {i}', pid=99, unit='other.service')
    return out + manager(T + 1000, 2000, BOOT1, 'ci-test-a.service: Deactivated successfully.', DONE, [('UNIT_RESULT', 'success')])


def boots():
    return (manager(T, 5000, BOOT1, 'Starting ci-test-a.service...', STARTING)
            + own(T + 10, 5010, BOOT1, 'first boot')
            + manager(T + 20, 5020, BOOT1, 'ci-test-a.service: Failed with result exit-code.', FAILED,
                      [('UNIT_RESULT', 'exit-code'), ('EXIT_STATUS', 3)])
            + manager(T - 100000, 100, BOOT2, 'Starting ci-test-a.service...', STARTING)
            + own(T - 99990, 110, BOOT2, 'second boot, clock behind')
            + entry(T - 99980, 120, BOOT2, [('_PID', 4242), ('UNIT', 'ci-test-a.service'), ('MESSAGE', 'not pid 1')])
            + own(T - 99970, 130, BOOT2, b'binary\n\xff\x00 line'))


def big():
    return own(T, 1000, BOOT1, 'x' * 3000) + own(T + 10, 1010, BOOT1, 'short') + own(T + 20, 1020, BOOT1, 'y' * 200)


SEEDS = [
    ('mixed', mixed, {}),
    ('many', many, {}),
    ('boots', boots, {}),
    ('big', big, {}),
    ('plain', mixed, {'SYSTEMD_JOURNAL_COMPACT': '0'}),
    ('unkeyed', mixed, {'SYSTEMD_JOURNAL_COMPACT': '0', 'SYSTEMD_JOURNAL_KEYED_HASH': '0'}),
]


def cut(data):
    """The file up to the end of its last object, the arena so sized."""
    b = bytearray(data)
    assert b[:8] == b'LPKSHHRH'
    header_size, = struct.unpack_from('<Q', b, 88)
    tail, = struct.unpack_from('<Q', b, 136)
    size, = struct.unpack_from('<Q', b, tail + 8)
    end = (tail + size + 7) & ~7
    struct.pack_into('<Q', b, 96, end - header_size)
    return bytes(b[:end])


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'journal_file')
    os.makedirs(out, exist_ok=True)
    remote = next(p for p in ('/lib/systemd/systemd-journal-remote', '/usr/lib/systemd/systemd-journal-remote')
                  if os.path.exists(p))
    with tempfile.TemporaryDirectory() as scratch:
        for name, make, env in SEEDS:
            export = os.path.join(scratch, name + '.export')
            with open(export, 'wb') as f:
                f.write(make())
            mnt = os.path.join(scratch, 'mnt')
            os.makedirs(mnt, exist_ok=True)
            written = os.path.join(scratch, name + '.full')
            script = (f'mount -t tmpfs -o size=16m tmpfs {mnt} && {remote} --output={mnt}/x.journal - <{export}'
                      f' && cp {mnt}/x.journal {written}')
            subprocess.run(['unshare', '-m', 'sh', '-c', script], check=True, env={**os.environ, **env})
            seed = os.path.join(out, name + '.journal')
            with open(written, 'rb') as f, open(seed, 'wb') as g:
                g.write(cut(f.read()))
            subprocess.run(['journalctl', '--file=' + seed, '--verify', '-q'], check=True)
            print(seed, os.path.getsize(seed), file=sys.stderr)


if __name__ == '__main__':
    main()
