"""Generate nr_base_graphs.npz (run once) from a semicolon table of TS 38.212 Tables 5.3.2-2 and 5.3.2-3.

The input is the base-graph table as published (row index; column index; shift V_ij for lifting-set
indices 0..7), one non-zero entry per line, the row index given only on a row's first line; the public
package py3gpp ships it as codes/bg1.csv and codes/bg2.csv. Usage:

    python make_nr_tables.py BG1.csv BG2.csv   # writes nr_base_graphs.npz beside this script
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def parse(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols, shifts = [], [], []
    row = -1
    for line in Path(path).read_text().splitlines()[2:]:
        fields = [f.strip() for f in line.split(";")]
        if len(fields) < 10 or fields[1] == "":
            continue
        if fields[0] != "":
            row = int(fields[0])
        rows.append(row)
        cols.append(int(fields[1]))
        shifts.append([int(v) for v in fields[2:10]])
    return np.array(rows, np.int16), np.array(cols, np.int16), np.array(shifts, np.int16)


def main(bg1: str, bg2: str) -> None:
    out = {}
    for name, path, shape, n_edges in (("bg1", bg1, (46, 68), 316), ("bg2", bg2, (42, 52), 197)):
        r, c, s = parse(path)
        assert len(r) == n_edges and r.max() + 1 == shape[0] and c.max() + 1 == shape[1], (name, len(r))
        out[f"{name}_row"], out[f"{name}_col"], out[f"{name}_shift"] = r, c, s
    np.savez_compressed(Path(__file__).with_name("nr_base_graphs.npz"), **out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
