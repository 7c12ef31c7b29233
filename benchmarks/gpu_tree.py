"""Pack a FERPlus subset, in the official layout, small enough to travel to a lent GPU machine.

A lent machine receives at most 64 MiB of files and reaches no network, so ``benchmarks.gpu_epoch`` runs there on
the first ``--train-fraction`` of the ``Training`` rows and ``--val-fraction`` of the ``PublicTest`` rows of
``fer2013new.csv`` (files copied as they are, one gzip tarball). Img/s and memory do not depend on the epoch length.

Usage::

    python -m benchmarks.gpu_tree --data-root ../shared/data/ferplus --out .gpu/ferplus_gpu.tgz
    # there: tar xzf .gpu/ferplus_gpu.tgz -C .gpu && python -m benchmarks.gpu_epoch --data-root .gpu/ferplus ...
"""

from __future__ import annotations

import argparse
import csv
import io
import tarfile
from pathlib import Path

from fer_zoo.datasets.ferplus import FOLDERS

USAGE = {"Training": "train", "PublicTest": "val"}


def subset_rows(rows: list[list[str]], train_fraction: float, val_fraction: float) -> list[list[str]]:
    """The first ``fraction`` of the training and validation rows of ``fer2013new.csv`` (header excluded)."""
    kept = []
    for usage, fraction in (("Training", train_fraction), ("PublicTest", val_fraction)):
        split = [r for r in rows if r and r[0] == usage]
        kept += split[: int(fraction * len(split))]
    return kept


def main(argv: list[str] | None = None) -> None:
    """Write the tarball ``<out>`` holding ``ferplus/`` (votes file, train and validation folders)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--train-fraction", type=float, default=0.8)
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--out", default=".gpu/ferplus_gpu.tgz")
    args = p.parse_args(argv)
    root = Path(args.data_root)
    votes = root / "fer2013new.csv"
    if not votes.is_file():
        raise SystemExit(f"benchmarks.gpu_tree: {votes} not found (need the official FERPlus layout)")
    with open(votes, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    kept = [r for r in subset_rows(rows, args.train_fraction, args.val_fraction) if r[1]]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    csv.writer(table).writerows([header, *kept])
    votes_bytes = table.getvalue().encode()
    with tarfile.open(out, "w:gz") as tar:
        info = tarfile.TarInfo("ferplus/fer2013new.csv")
        info.size = len(votes_bytes)
        tar.addfile(info, io.BytesIO(votes_bytes))
        for row in kept:
            folder = FOLDERS[USAGE[row[0]]]
            if (root / folder / row[1]).is_file():
                tar.add(root / folder / row[1], arcname=f"ferplus/{folder}/{row[1]}")
    print(f"{out}: {len(kept)} rows, {out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
