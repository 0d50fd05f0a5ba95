#!/usr/bin/env python3
"""Trims a fuzz corpus to a budget: the seeds, then greedily the inputs that add the most
not-yet-covered features, until the budget (files, bytes) is spent or nothing adds coverage.

    trim_corpus.py CONTROL_FILE OUT_DIR MAX_FILES MAX_BYTES

CONTROL_FILE comes from a libFuzzer merge run with `-set_cover_merge=1 -merge_control_file=`
(with set-cover merging every input's line lists all of its features, not only new ones). Its
first corpus holds the seeds, which are always kept under their own names; the chosen inputs
are copied under their (hash) names. Used by run.sh; see README.md.
"""

import os
import shutil
import sys


def main():
    control, out_dir, max_files, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(control, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    count, first = int(lines[0]), int(lines[1])
    paths = lines[2 : 2 + count]
    features, sizes = {}, {}
    for line in lines[2 + count :]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "STARTED":
            sizes[int(parts[1])] = int(parts[2])
        elif parts[0] == "FT":
            features[int(parts[1])] = set(map(int, parts[2:]))

    covered = set()
    for i in range(first):
        covered |= features.get(i, set())
    seed_features = len(covered)
    # Inputs that crashed or hung during the merge have no FT line and are never kept.
    gains = {i: features[i] - covered for i in range(first, count) if features.get(i, set()) - covered}
    chosen, used = [], 0
    while gains and len(chosen) < max_files:
        best = max(gains, key=lambda i: (len(gains[i]), -sizes.get(i, 0)))
        gain = gains.pop(best)
        if used + sizes.get(best, 0) > max_bytes:
            continue
        chosen.append(best)
        used += sizes.get(best, 0)
        covered |= gain
        for i in list(gains):
            gains[i] -= gain
            if not gains[i]:
                del gains[i]

    all_features = set().union(*features.values()) if features else set()
    os.makedirs(out_dir, exist_ok=True)
    for i in list(range(first)) + chosen:
        shutil.copy(paths[i], os.path.join(out_dir, os.path.basename(paths[i])))
    print(
        f"kept {first} seeds + {len(chosen)} of {count - first} inputs ({used} bytes): "
        f"{len(covered)} of {len(all_features)} features (seeds alone {seed_features})"
    )


if __name__ == "__main__":
    main()
