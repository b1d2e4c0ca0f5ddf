#!/usr/bin/env python3
"""Writes the entries of the synthetic journals in journalctl's export
format, for systemd-journal-remote to turn into journal files (see
make.sh beside this file). Deterministic: the same arguments give the same
bytes.

    entries.py PART      PART: host-a-boot-1, host-a-boot-2 or host-b

The entries imitate what journald and the service manager write for CI
jobs (jobgate's units) and their neighbours: runs with their manager
messages, lines that are compressed in the file (over 512 bytes), lines
with a newline or bytes that are not UTF-8, a line with MESSAGE twice,
lines without a run id, a unit only the manager speaks of, spoofed UNIT=
fields, units whose names need escaping, and a second host whose entries
interleave with (and sometimes share the exact time of) the first's.
"""
import sys

T0 = 1704067200_000000  # 2024-01-01T00:00:00Z, in microseconds

STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
STARTED = "39f53479d3a045ac8e11786248231fbf"
DEACTIVATED = "7ad2d189f7e94e70a38c781354912448"
FAILED_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
COREDUMP = "fc2e22bc6ee647b6b90729ab34a250b1"

HOSTS = {
    "a": ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ci-runner-a"),
    "b": ("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "ci-runner-b"),
}


def run_id(n):
    return f"{n:032x}"


class Writer:
    def __init__(self, host, boot, boot_realtime):
        self.machine, self.hostname = HOSTS[host]
        self.boot = boot
        self.boot_realtime = boot_realtime
        self.now = boot_realtime + 1_000_000
        self.out = sys.stdout.buffer

    def tick(self, us=1_000):
        self.now += us

    def entry(self, fields):
        head = [
            ("__REALTIME_TIMESTAMP", str(self.now)),
            ("__MONOTONIC_TIMESTAMP", str(self.now - self.boot_realtime)),
            ("_BOOT_ID", self.boot),
            ("_MACHINE_ID", self.machine),
            ("_HOSTNAME", self.hostname),
        ]
        for name, value in head + fields:
            value = value if isinstance(value, bytes) else value.encode()
            name = name.encode()
            if b"\n" in value or any(b < 0x20 and b != 9 for b in value):
                self.out.write(name + b"\n" + len(value).to_bytes(8, "little") + value + b"\n")
            else:
                self.out.write(name + b"=" + value + b"\n")
        self.out.write(b"\n")
        self.tick()

    def manager(self, unit, message, message_id, run=None, extra=()):
        fields = [
            ("PRIORITY", "6"),
            ("SYSLOG_FACILITY", "3"),
            ("SYSLOG_IDENTIFIER", "systemd"),
            ("_TRANSPORT", "journal"),
            ("_PID", "1"),
            ("_UID", "0"),
            ("_COMM", "systemd"),
            ("_SYSTEMD_CGROUP", "/init.scope"),
            ("_SYSTEMD_UNIT", "init.scope"),
            ("_SYSTEMD_SLICE", "-.slice"),
            ("CODE_FILE", "src/core/job.c"),
            ("MESSAGE_ID", message_id),
            ("UNIT", unit),
            ("MESSAGE", message),
        ]
        if run:
            fields.append(("INVOCATION_ID", run))
        self.entry(fields + list(extra))

    def line(self, unit, pid, message, run=None, comm="bash", extra=()):
        fields = [
            ("PRIORITY", "6"),
            ("SYSLOG_FACILITY", "3"),
            ("SYSLOG_IDENTIFIER", comm),
            ("_TRANSPORT", "stdout"),
            ("_STREAM_ID", f"{pid:032x}"),
            ("_PID", str(pid)),
            ("_UID", "0"),
            ("_COMM", comm),
            ("_SYSTEMD_CGROUP", "/system.slice/" + unit),
            ("_SYSTEMD_UNIT", unit),
            ("_SYSTEMD_SLICE", "system.slice"),
        ]
        if run:
            fields.append(("_SYSTEMD_INVOCATION_ID", run))
        fields.append(("MESSAGE", message))
        self.entry(fields + list(extra))


def job_run(w, unit, run, pid, lines, status=0, result="success"):
    w.manager(unit, f"Starting {unit}...", STARTING, run, [("JOB_TYPE", "start")])
    w.manager(unit, f"Started {unit}.", STARTED, run, [("JOB_TYPE", "start"), ("JOB_RESULT", "done")])
    for text in lines:
        w.line(unit, pid, text, run)
    if status:
        w.manager(
            unit,
            f"{unit}: Main process exited, code=exited, status={status}/FAILURE",
            PROCESS_EXIT,
            run,
            [("EXIT_CODE", "exited"), ("EXIT_STATUS", str(status))],
        )
        w.manager(unit, f"{unit}: Failed with result '{result}'.", FAILED_RESULT, run, [("UNIT_RESULT", result)])
    w.manager(unit, f"{unit}: Deactivated successfully.", DEACTIVATED, run)


def neighbours(w, n):
    """Lines of other units, some with names jobgate's names refuse."""
    w.line("cron.service", 612, f"(root) CMD (run-parts --report /etc/cron.hourly) #{n}", run_id(0xC0), comm="cron")
    w.line("session-3.scope", 2201, f"pam_unix(sshd:session): session opened #{n}", comm="sshd")
    w.line(
        "systemd-fsck@dev-disk-by\\x2duuid-0a1b\\x2d2c3d.service",
        301,
        f"/dev/vda1: clean, 1234/65536 files #{n}",
        run_id(0xF5),
        comm="systemd-fsck",
    )
    w.line("user@1000.service", 1500, f"Reached target default.target #{n}", run_id(0x1000), comm="systemd")


def build_lines(run_no):
    lines = [f"build {run_no}: step {i} of 12" for i in range(1, 13)]
    if run_no == 2:
        lines[3] = "build 2: " + "compressible log line " * 150  # about 3 KB
        lines[4] = "build 2: a line\nwith a newline in it"
        lines[5] = b"build 2: bytes that are not UTF-8: \xff\xfe\xc3("
        lines[6] = "build 2: " + "".join(f"{i:05d}" for i in range(4000))  # 20 KB
        lines[7] = ""
    return lines


def host_a_boot_1(w):
    w.manager("ci-demo-never.service", "Starting ci-demo-never.service...", STARTING, run_id(0xE0))
    w.manager(
        "ci-demo-never.service",
        "ci-demo-never.service: Failed to locate executable /nope: No such file or directory",
        "641257651c1b4ec9a8624d7a40a9e1e7",
        run_id(0xE0),
    )
    w.manager(
        "ci-demo-never.service",
        "ci-demo-never.service: Failed with result 'resources'.",
        FAILED_RESULT,
        run_id(0xE0),
        [("UNIT_RESULT", "resources")],
    )
    for n in range(3):
        neighbours(w, n)
    job_run(w, "ci-demo-build.service", run_id(0xB1), 1001, build_lines(1))
    job_run(w, "ci-demo-deploy@main.service", run_id(0xD1), 1101, [f"deploy main: {i}" for i in range(5)], 3, "exit-code")
    for n in range(3, 6):
        neighbours(w, n)


def host_a_boot_2(w):
    unit = "ci-demo-build.service"
    # Run 2 starts with the manager still holding run 1's id (see message_ids::STARTING).
    w.manager(unit, f"Starting {unit}...", STARTING, run_id(0xB1), [("JOB_TYPE", "start")])
    w.manager(unit, f"Started {unit}.", STARTED, run_id(0xB2), [("JOB_TYPE", "start"), ("JOB_RESULT", "done")])
    for i, text in enumerate(build_lines(2)):
        w.line(unit, 2001, text, run_id(0xB2))
        if i == 2:
            neighbours(w, 10)
            # A line of a child that exited before journald could tag it.
            w.line(unit, 2002, "build 2: from a short-lived child", None)
            # Two MESSAGE fields; the second's value is older in the file.
            w.line(unit, 2001, "build 2: the first MESSAGE", run_id(0xB2), extra=[("MESSAGE", "build 2: step 1 of 12")])
            # Fields claiming the unit from processes other than the manager.
            w.entry([("_PID", "4242"), ("_UID", "1000"), ("_SYSTEMD_UNIT", "evil.service"),
                     ("UNIT", unit), ("INVOCATION_ID", run_id(0xBAD)), ("MESSAGE", "spoofed manager message")])
            w.entry([("_PID", "777"), ("_UID", "0"), ("_SYSTEMD_UNIT", "systemd-coredump@0-777-0.service"),
                     ("MESSAGE_ID", COREDUMP), ("COREDUMP_UNIT", unit), ("MESSAGE", "Process 2003 dumped core.")])
            w.entry([("_PID", "888"), ("_UID", "0"), ("_SYSTEMD_UNIT", "systemd-logind.service"),
                     ("OBJECT_SYSTEMD_UNIT", unit), ("MESSAGE", "an object message about the unit")])
            # An entry of the unit without any MESSAGE.
            w.entry([("_PID", "2001"), ("_SYSTEMD_UNIT", unit), ("_SYSTEMD_INVOCATION_ID", run_id(0xB2)),
                     ("CODE_FILE", "no-message.c")])
    w.manager(unit, f"{unit}: Main process exited, code=exited, status=2/INVALIDARGUMENT", PROCESS_EXIT,
              run_id(0xB2), [("EXIT_CODE", "exited"), ("EXIT_STATUS", "2")])
    w.manager(unit, f"{unit}: Failed with result 'exit-code'.", FAILED_RESULT, run_id(0xB2), [("UNIT_RESULT", "exit-code")])
    job_run(w, "ci-demo-deploy@v1.2.service", run_id(0xD2), 2101, [f"deploy v1.2: {i}" for i in range(4)])
    for n in range(3):
        job_run(w, unit, run_id(0xB3 + n), 2200 + n, [f"build {3 + n}: quick"])
        neighbours(w, 20 + n)


def host_b(w):
    # Starts at the same microsecond as host A's second boot, then runs at a
    # step that meets host A's clock again now and then.
    for n in range(40):
        w.line("ci-demo-build.service", 3001, f"host b: build line {n}", run_id(0xBB))
        w.line("nginx.service", 3100, f'10.0.0.{n} - - "GET / HTTP/1.1" 200', run_id(0xAB), comm="nginx")
        w.tick(3_000 - 2 * 1_000)


PARTS = {
    "host-a-boot-1": ("a", "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", T0, host_a_boot_1),
    "host-a-boot-2": ("a", "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2", T0 + 3_600_000_000, host_a_boot_2),
    "host-b": ("b", "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1", T0 + 3_600_000_000, host_b),
}

if __name__ == "__main__":
    host, boot, start, write = PARTS[sys.argv[1]]
    write(Writer(host, boot, start))
