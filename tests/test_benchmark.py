import subprocess
import sys

import pandas as pd

from tests.conftest import REPO


def test_benchmark_runner_end_to_end(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--dataset",
        "synthetic",
        "--models",
        "baseline,clip-zeroshot",
        "--epochs",
        "1",
        "--runs",
        str(tmp_path),
        "--results",
        str(tmp_path / "results"),
        "--override",
        "data.num_train=64",
        "--override",
        "data.num_val=32",
        "--override",
        "data.num_test=32",
        "--override",
        "data.image_size=32",
        "--override",
        "data.synth_size=32",
        "--override",
        "data.num_workers=0",
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "results" / "synthetic.csv")
    assert list(table["model"]) == ["baseline", "clip-zeroshot"] and table["acc"].between(0, 1).all()
    markdown = (tmp_path / "results" / "synthetic.md").read_text()
    assert "| baseline | 0 |" in markdown and "single-device" in markdown
    assert (tmp_path / "results" / "synthetic" / "baseline" / "s0" / "curves.png").exists()
