"""Where the repository, the published results tree and the run folders are."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the published tree: one folder per study, ``<study>/{NOTES.md, <dataset>.md, .csv, runs/<dataset>/<row>/s<seed>/}``
RESULTS = ROOT / "benchmarks" / "results"
