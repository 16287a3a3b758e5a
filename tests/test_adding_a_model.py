"""The README's "Adding a model" walk-through, followed with a throwaway MLP autoencoder in a copy of the
repository: its class and one line in models.py, one entry in experiments.py and one notebook (a copy of
notebook 03) — three files — and it appears in the autoencoder table, in notebook 05's latent spaces and
t-SNE figure, and in the notebooks `make reproduce` runs (quick budget included)."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, child_env

MODEL_CLASS = '''
class MLPAutoencoder(nn.Module):
    """784 -> 256 -> latent -> 256 -> 784 with ReLUs and a sigmoid output."""

    def __init__(self, latent_dim: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 28, 28)))

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


'''
KINDS_LINE = '    "mlp_ae": (MLPAutoencoder, ae_loss),\n'
ENTRY = '''    Experiment("mlp_ae", "MLP AE", "autoencoder", {"kind": "mlp_ae"},
               {"steps": 1_000, "batch_size": 256, "lr": 1e-3}, **_AE_BUDGET),
'''


def insert_before(path: Path, anchor: str, text: str) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count(anchor) == 1, f"{path.name}: the walk-through's anchor {anchor!r} is not unique"
    path.write_text(source.replace(anchor, text + anchor), encoding="utf-8")


def follow_the_walk_through(repo: Path) -> None:
    # 1. models.py: the class, and its line in MODEL_KINDS.
    insert_before(repo / "helpers" / "models.py", "def n_params(", MODEL_CLASS)
    insert_before(repo / "helpers" / "models.py", '    "classifier": (Classifier, classifier_loss),\n', KINDS_LINE)
    # 2. experiments.py: one entry, after the autoencoders already there.
    insert_before(repo / "helpers" / "experiments.py", '    Experiment("vae_gru"', ENTRY)
    # 3. Its own figures: a copy of notebook 03 that names the new run.
    source = (repo / "notebooks" / "03_cnn_autoencoder.ipynb").read_text(encoding="utf-8")
    for old, new in [('EXPERIMENTS[\\"cnn_ae\\"]', 'EXPERIMENTS[\\"mlp_ae\\"]'), ("03_cnn_", "11_mlp_"),
                     ("# 03 · CNN autoencoder", "# 11 · MLP autoencoder"), ("CNN autoencoder:", "MLP autoencoder:")]:
        assert old in source, old
        source = source.replace(old, new)
    (repo / "notebooks" / "11_mlp_autoencoder.ipynb").write_text(source, encoding="utf-8")


def changed_files(original: Path, copy: Path) -> list[str]:
    names = {p.relative_to(root).as_posix() for root in (original, copy) for folder in ("helpers", "notebooks")
             for p in (root / folder).glob("*") if p.is_file() and p.suffix in (".py", ".ipynb")}
    return sorted(n for n in names if not (original / n).is_file() or not (copy / n).is_file()
                  or (original / n).read_bytes() != (copy / n).read_bytes())


CHECK = textwrap.dedent("""
    import json, sys
    import helpers as H
    from helpers import runner

    work = sys.argv[1]
    assert H.__file__.startswith(sys.argv[2]), H.__file__  # the copy's helpers, not the repository's
    print("NOTEBOOKS", json.dumps([p.stem for p in runner.notebooks()]))
    print("QUICK", json.dumps(H.EXPERIMENTS["mlp_ae"].config("quick").steps))
    runner.reproduce(only=["05", "11"], budget="tiny", fig_dir=work + "/figures", results_path=work + "/metrics.json",
                     runs_dir=work + "/runs", out_dir=work + "/executed", log_output=False)
    print("TABLE", json.dumps(H.TABLES["autoencoders"](H.read_metrics(work + "/metrics.json"))))
""")


@pytest.mark.notebook
def test_a_new_autoencoder_needs_three_files_and_appears_in_tables_tsne_and_runs(tmp_path, synthetic_dir):
    repo = tmp_path / "repo"
    for folder in ("helpers", "notebooks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    follow_the_walk_through(repo)
    assert changed_files(ROOT, repo) == ["helpers/experiments.py", "helpers/models.py",
                                         "notebooks/11_mlp_autoencoder.ipynb"]

    work = tmp_path / "work"
    work.mkdir()
    # the other rows of the table
    committed = json.loads((ROOT / "results" / "metrics.json").read_text(encoding="utf-8"))
    (work / "metrics.json").write_text(json.dumps({k: committed[k] for k in ("lstm_ae", "cnn_ae")}), encoding="utf-8")
    env = child_env(PYTHONPATH=repo, QUICKDRAW_DIR=synthetic_dir)
    proc = subprocess.run([sys.executable, "-c", CHECK, str(work), str(repo)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines()
           if line.split(" ", 1)[0] in ("NOTEBOOKS", "QUICK", "TABLE")}

    assert out["NOTEBOOKS"][-1] == "11_mlp_autoencoder"  # `make reproduce` and QUICK=1 run it
    assert out["QUICK"] == 150
    metrics = json.loads((work / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["mlp_ae"]["latent_dim"] == 32 and metrics["mlp_ae"]["test_mse"] < 0.5
    assert "| MLP AE | 419,120 | 32 | 12 |" in out["TABLE"], out["TABLE"]  # (784+1)*256 + 257*32 + 33*256 + 257*784
    assert sorted(metrics["latent"]["models"]) == ["CNN AE", "CNN-CNN VAE", "GRU-CNN VAE", "LSTM AE", "MLP AE"]
    assert (work / "figures" / "05_tsne.png").stat().st_size > 10_000
    assert (work / "figures" / "11_mlp_reconstructions.png").is_file()


# ---------------------------------------------------------------------------------------------------
# The README's "Adding an experiment to notebook 06": a conditional design is one registry entry
# ---------------------------------------------------------------------------------------------------

DESIGN = '''    Experiment("cvae_class_prior_small_minus_val", "class prior, 8-d latent", "conditional",
               {**_vae_spec("cnn", 5), "latent_dim": 8, "class_input": "none", "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
'''

CHECK_06 = textwrap.dedent("""
    import json, sys
    import helpers as H

    assert H.__file__.startswith(sys.argv[2]), H.__file__
    # What notebook 06 does with the designs: each trained without the validation part, scored on it, one chosen.
    nb = H.Notebook(sys.argv[3], budget="tiny", runs_dir=sys.argv[1], progress="off")
    clf = nb.model("classifier")
    candidates = H.compare_designs(nb, clf, 40, H.classifier_outputs(clf, nb.X_val)[0])
    beyond = {"candidates": candidates, "chosen": H.choose_design(candidates)}
    print("CANDIDATES", json.dumps(candidates))
    print(H.TABLES["beyond-candidates"]({"beyond": beyond}))
""")


@pytest.mark.notebook
def test_a_new_conditional_design_needs_one_registry_entry_and_notebook_06_compares_it(tmp_path, synthetic_dir):
    """Notebook 06 runs the registry's designs through helpers.compare_designs and choose_design; this test
    calls those two, as notebook 06 does, in a copy with one entry added (the nbval test runs notebook 06)."""
    repo = tmp_path / "repo"
    for folder in ("helpers", "notebooks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    insert_before(repo / "helpers" / "experiments.py", "    # The CNN-CNN VAE with its KL weight", DESIGN)
    assert changed_files(ROOT, repo) == ["helpers/experiments.py"]

    proc = subprocess.run([sys.executable, "-c", CHECK_06, str(tmp_path / "runs"), str(repo), str(synthetic_dir)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=child_env(PYTHONPATH=repo))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("CANDIDATES ")]
    candidates = json.loads(line.removeprefix("CANDIDATES "))
    assert list(candidates) == ["cvae_cnn_minus_val", "cvae_class_prior_decoder_minus_val",
                                "cvae_class_prior_minus_val", "cvae_class_prior_small_minus_val"]
    assert 0 <= candidates["cvae_class_prior_small_minus_val"]["val_adherence"] <= 1
    assert "class prior, 8-d latent" in proc.stdout  # its row of the report's table of designs
