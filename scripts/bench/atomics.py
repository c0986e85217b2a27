#!/usr/bin/env python3
"""Atomic read-modify-write instructions per request, from a callgrind dump taken with
--dump-instr=yes: every instruction of the dumped objects that locks the bus (a `lock`
prefix, or `xchg` with memory, which locks without one) is found with objdump, and the
times each ran are added up. Each costs a few nanoseconds where a plain instruction costs
a fraction of one, and none of that shows in a count of instructions.

    atomics.py DUMP REQUESTS      prints the total per request, then the top functions
"""

import collections
import re
import subprocess
import sys

LOCKED = re.compile(r"^\s*([0-9a-f]+):\s+(lock\s|xchg\s+\S*\()")


def atomics_of(path):
    """Addresses of the locked instructions in the object at `path` (empty when objdump
    cannot read it)."""
    found = set()
    try:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                             capture_output=True, text=True, check=False).stdout
    except OSError:
        return found
    for line in out.splitlines():
        m = LOCKED.match(line)
        if m:
            found.add(int(m.group(1), 16))
    return found


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} DUMP REQUESTS")
    dump, requests = sys.argv[1], int(sys.argv[2])
    if requests <= 0:
        sys.exit("REQUESTS must be positive")
    objects = {}
    ob = fn_ob = fn = None
    skip = False
    addr = 0
    by_fn = collections.Counter()
    with open(dump, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("ob="):
                ob = line[3:].strip()
                if ob not in objects:
                    objects[ob] = atomics_of(ob) if ob.startswith("/") else set()
                continue
            if line.startswith("fn="):
                fn, fn_ob, skip = line[3:].strip(), ob, False
                continue
            if line.startswith("calls="):
                skip = True  # the next cost line is the call's, not this function's
                continue
            if not line or line[0] not in "0123456789+-*":
                continue
            fields = line.split()
            position = fields[0]
            if position.startswith("0x"):
                addr = int(position, 16)
            elif position[0] in "+-":
                addr += int(position)
            if skip:
                skip = False
                continue
            if fn_ob is not None and addr in objects.get(fn_ob, ()) and len(fields) > 2:
                by_fn[fn] += int(fields[2])
    total = sum(by_fn.values())
    print(f"{total / requests:.1f}")
    for name, count in by_fn.most_common(12):
        print(f"  {count / requests:5.1f}  {name[:110]}", file=sys.stderr)


if __name__ == "__main__":
    main()
