"""fer_zoo.argv and the packaged/experiment configs: aliases, default data, one source of defaults."""

from pathlib import Path

import pytest

from fer_zoo.argv import expand_aliases
from fer_zoo.cli import main
from tests.conftest import REPO


def test_aliases_expand_to_packaged_configs():
    out = expand_aliases(["fit", "--model", "baseline", "--data=synthetic", "--model", "fer_zoo.models.Baseline"])
    assert out[2].endswith("configs/model/baseline.yaml") and out[4].endswith("configs/data/synthetic.yaml")
    assert out[-1] == "fer_zoo.models.Baseline"


def _experiment_rows():
    """Every stand-alone experiment file and every index row (its configs composed left to right)."""
    from benchmarks.recipes import experiment_files, experiment_index

    rows = []
    for folder in sorted(p for p in (REPO / "experiments").iterdir() if p.is_dir()):
        rows += [(f"{folder.name}/{f.stem}", [f]) for f in sorted(folder.glob("*.yaml")) if f.name != "index.yaml"]
        rows += [(f"{folder.name}/{row}", experiment_files(folder.name, row))
                 for row in (experiment_index(folder.name).get("rows") or {})]
    return rows


@pytest.mark.parametrize("name,configs", _experiment_rows(), ids=lambda v: v if isinstance(v, str) else "")
def test_experiment_configs_parse(name, configs, capsys):
    """Every committed experiment parses with the CLI's type checks (a renamed option fails here, not mid-bench)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *[a for c in configs for a in ("--config", str(c))], "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: fer_zoo.models." in capsys.readouterr().out


def test_index_rows_name_existing_configs_and_deltas_are_short():
    from benchmarks.recipes import experiment_index

    for folder in (p for p in (REPO / "experiments").iterdir() if (p / "index.yaml").is_file()):
        index = experiment_index(folder.name)
        for row, entry in index["rows"].items():
            assert all((folder / c).is_file() for c in entry["configs"]), row
            assert entry["configs"][0].startswith("_base/"), f"{row}: a row starts from a protocol base"
            for delta in entry["configs"][1:]:
                assert "class_path: fer_zoo.datamodules" not in (folder / delta).read_text(), f"{delta} repeats data"
            assert entry.get("baseline") in (None, *index["rows"]), f"{row}: its baseline is not an index row"


def test_a_start_delta_survives_the_method_delta_before_it():
    """A method delta that changes class_path keeps only the options its class takes, so the start goes last."""
    from benchmarks.recipes import experiment_config, experiment_index

    rows = [r for r, e in experiment_index("ferplus")["rows"].items() if "mobilenetv2" in " ".join(e["configs"][1:])]
    assert {"mnv2-e2n", "mnv2-lanet", "mnv2-mpa", "mnv2-lacovl"} <= set(rows)
    for row in rows:
        init = experiment_config("ferplus", row)["model"]["init_args"]
        assert init["weights"] == "mobilenetv2.in1k", row
        assert init.get("backbone", init.get("pyramid")) == "mobilenetv2", row


def test_fit_without_data_uses_the_synthetic_faces(capsys):
    """The README's own command: ``fer-zoo fit --model lacovl`` with no --data."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "lacovl", "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "fer_zoo.datamodules.SyntheticDataModule" in out and "fer_zoo.models.LaCoVL" in out


def test_unknown_model_or_data_alias_is_one_line():
    with pytest.raises(SystemExit, match="unknown --model 'nosuchmodel'; one of baseline, .*lacovl") as info:
        main(["fit", "--model", "nosuchmodel"])
    assert "\n" not in str(info.value)
    with pytest.raises(SystemExit, match="unknown --data 'rafbd'"):
        main(["fit", "--model", "baseline", "--data", "rafbd"])


def test_wandb_names_come_from_the_experiment_not_the_model_class():
    from fer_zoo.argv import experiment_name

    base, delta = Path("experiments/ferplus/_base/ferplus-face.yaml"), Path("experiments/ferplus/face/x.yaml")
    assert experiment_name([base, delta], "baseline") == "ferplus-face+x"
    assert experiment_name(None, "baseline") == "baseline"


def test_packaged_yaml_holds_only_deviations_from_the_class_signature():
    """One source of defaults: a packaged alias never repeats a value its class signature already has."""
    import importlib
    import inspect

    import yaml

    for path in sorted((REPO / "fer_zoo" / "configs").glob("*/*.yaml")):
        node = yaml.safe_load(path.read_text())
        if not isinstance(node, dict) or "class_path" not in node:
            continue
        module, _, name = node["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        defaults = {}
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass):
                params = inspect.signature(klass.__init__).parameters.values()
                defaults.update({p.name: p.default for p in params if p.default is not inspect.Parameter.empty})
        repeated = [k for k, v in (node.get("init_args") or {}).items() if k in defaults and defaults[k] == v]
        assert not repeated, f"{path.name} repeats class defaults {repeated}"


