#!/usr/bin/env python3
"""Check that `cargo run --example topology -- --numactl` agrees with
`numactl --hardware` on this machine: same nodes, same CPU lists, same
distances, memory sizes within 1 %. Free memory is only shown (it moves)."""
import re
import subprocess
import sys


def parse(text):
    out = {"nodes": None, "cpus": {}, "size": {}, "free": {}, "dist": {}}
    in_dist = False
    for line in text.splitlines():
        m = re.match(r"available: (\d+) nodes", line)
        if m:
            out["nodes"] = int(m.group(1))
        m = re.match(r"node (\d+) cpus:(.*)", line)
        if m:
            out["cpus"][int(m.group(1))] = m.group(2).split()
        m = re.match(r"node (\d+) (size|free): (\d+) MB", line)
        if m:
            out[m.group(2)][int(m.group(1))] = int(m.group(3))
        if line.startswith("node distances"):
            in_dist = True
            continue
        m = re.match(r"\s*(\d+):\s+(.*)", line)
        if in_dist and m:
            out["dist"][int(m.group(1))] = [int(x) for x in m.group(2).split()]
    return out


def main():
    ref = parse(subprocess.run(["numactl", "--hardware"], check=True,
                               capture_output=True, text=True).stdout)
    ours = parse(subprocess.run(
        ["cargo", "run", "-q", "--example", "topology", "--", "--numactl"],
        check=True, capture_output=True, text=True).stdout)
    errors = []
    for key in ("nodes", "cpus", "dist"):
        if ref[key] != ours[key]:
            errors.append(f"{key}: numactl {ref[key]} vs numakit {ours[key]}")
    if ref["size"].keys() != ours["size"].keys():
        errors.append(f"nodes with sizes differ: {ref['size']} vs {ours['size']}")
    for node, size in ref["size"].items():
        mine = ours["size"].get(node, 0)
        if abs(mine - size) > max(1, size // 100):
            errors.append(f"node {node} size: numactl {size} MB vs numakit {mine} MB")
    print(f"numactl: {ref}\nnumakit: {ours}")
    if errors:
        print("MISMATCH:\n  " + "\n  ".join(errors))
        return 1
    print(f"topology agrees with numactl --hardware ({ref['nodes']} node(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
