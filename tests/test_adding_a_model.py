"""The README's walk-throughs, followed in a copy of the repository, and then the package's own tests that such a
change can break run there, on the copy (its structure, its registry, its report), with the new model's notebook
or study at the tiny budget:

- "Adding an autoencoder": a throwaway MLP autoencoder (its class, one line in models/build.py, one registry entry,
  one notebook); it appears in the autoencoder table, in notebook 05's latent spaces and t-SNE, and in the runs.
- "Adding a part to the VAE": a learned diagonal Gaussian prior in a file of its own, one line in models/build.py,
  one registry entry; the learned-priors study compares it with the others on the validation split.
- "Adding a conditional design": one registry entry; the conditional-designs study compares it.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, child_env

pytestmark = pytest.mark.notebook

# The package's tests that a new model, part or registry entry can break: the package's structure and layers,
# every registry entry building and training, the report's tables rendering from the results.
STRUCTURE_TESTS = ["tests/test_package.py", "tests/test_report.py"]

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
AE_ENTRY = '''    Experiment("mlp_ae", "MLP AE", "autoencoder", {"kind": "mlp_ae"},
               {"steps": 1_000, "batch_size": 256, "lr": 1e-3}, **_AE_BUDGET),
'''

PRIOR_FILE = '''"""A learned diagonal Gaussian prior, p(z) = N(m, diag s^2), with m and log s^2 trained by the ELBO."""

import torch
from torch import nn

from .priors import log_normal

__all__ = ["DiagonalGaussianPrior"]


class DiagonalGaussianPrior(nn.Module):
    conditional = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.mean = nn.Parameter(torch.zeros(latent_dim))
        self.logvar = nn.Parameter(torch.zeros(latent_dim))

    def class_mean(self, z, y=None):
        return torch.zeros_like(z)

    def log_prob(self, z, y=None):
        return log_normal(z, self.mean.expand_as(z), self.logvar.expand_as(z))

    def kl(self, mu, logvar, y=None, z=None):
        """KL(N(mu, s_q^2) || N(m, s^2)) per dimension: (log s^2 - log s_q^2 + (s_q^2 + (mu - m)^2) / s^2 - 1) / 2."""
        return 0.5 * (self.logvar - logvar + (logvar.exp() + (mu - self.mean).pow(2)) / self.logvar.exp() - 1)

    @torch.no_grad()
    def sample(self, n, y=None, generator=None):
        noise = torch.randn(n, self.latent_dim, generator=generator)
        return self.mean.detach().float().cpu() + noise * torch.exp(0.5 * self.logvar.detach().float().cpu())
'''
PRIOR_LINE = '    "diagonal": lambda latent_dim, n_classes, n_components, encoder: DiagonalGaussianPrior(latent_dim),\n'
PRIOR_IMPORT = "from .diagonal_prior import DiagonalGaussianPrior\n"
PRIOR_ENTRY = '''    Experiment("vae_cnn_diagonal_minus_val", "learned diagonal Gaussian prior", "prior",
               {**_vae_spec("cnn"), "prior": "diagonal"},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
'''

DESIGN_ENTRY = '''    Experiment("cvae_class_prior_small_minus_val", "class prior, 8-d latent", "conditional",
               {**_vae_spec("cnn", 5), "latent_dim": 8, "class_input": "none", "class_prior": True},
               {"epochs": 50, "batch_size": 128, "lr": 1e-3}, **_VAE_BUDGET, train_on="train_minus_val"),
'''


def insert_before(path: Path, anchor: str, text: str) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count(anchor) == 1, f"{path.name}: the walk-through's anchor {anchor!r} is not unique"
    path.write_text(source.replace(anchor, text + anchor), encoding="utf-8")


def copy_of_the_repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for folder in ("helpers", "notebooks", "tests", "results", "figures", ".ci"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    for name in ("report.md", "README.md", "Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    return repo


def changed_files(original: Path, copy: Path) -> list[str]:
    names = {p.relative_to(root).as_posix() for root in (original, copy) for folder in ("helpers", "notebooks")
             for p in (root / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb")}
    return sorted(n for n in names if not (original / n).is_file() or not (copy / n).is_file()
                  or (original / n).read_bytes() != (copy / n).read_bytes())


def run_in(repo: Path, args: list[str], **env) -> str:
    """``python args`` in the copy, with the copy's helpers; the output, or a failure that shows it."""
    proc = subprocess.run([sys.executable, *args], env=child_env(PYTHONPATH=repo, **env), capture_output=True,
                          text=True, timeout=600, cwd=repo)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def run_the_package_tests(repo: Path, tests: list[str]) -> None:
    out = run_in(repo, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                        *tests])
    assert " passed" in out and " failed" not in out, out[-3000:]


def tagged(stdout: str, *tags: str) -> dict:
    """The JSON after each ``TAG `` line of a check script's output."""
    return {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines()
            if line.split(" ", 1)[0] in tags}


# ---------------------------------------------------------------------------------------------------
# Adding an autoencoder
# ---------------------------------------------------------------------------------------------------

def add_an_autoencoder(repo: Path) -> None:
    models = repo / "helpers" / "models"
    # 1. models/autoencoders.py: the class, and its name in __all__.
    source = (models / "autoencoders.py").read_text(encoding="utf-8") + MODEL_CLASS
    source = source.replace('__all__ = ["LSTMAutoencoder", "CNNAutoencoder", "ae_loss"]',
                            '__all__ = ["LSTMAutoencoder", "CNNAutoencoder", "MLPAutoencoder", "ae_loss"]')
    (models / "autoencoders.py").write_text(source, encoding="utf-8")
    # 2. models/build.py: its kind, a line in MODEL_KINDS (and the import).
    insert_before(models / "build.py", '    "classifier": (Classifier, classifier_loss),\n',
                  '    "mlp_ae": (MLPAutoencoder, ae_loss),\n')
    source = (models / "build.py").read_text(encoding="utf-8")
    (models / "build.py").write_text(source.replace("import CNNAutoencoder, LSTMAutoencoder, ae_loss",
                                                    "import CNNAutoencoder, LSTMAutoencoder, MLPAutoencoder, ae_loss"),
                                     encoding="utf-8")
    # 3. studies/registry.py: one entry, after the autoencoders already there.
    insert_before(repo / "helpers" / "studies" / "registry.py", '    Experiment("vae_gru"', AE_ENTRY)
    # 4. Its own figures: a copy of notebook 03 that names the new run.
    source = (repo / "notebooks" / "03_cnn_autoencoder.ipynb").read_text(encoding="utf-8")
    for old, new in [('EXPERIMENTS[\\"cnn_ae\\"]', 'EXPERIMENTS[\\"mlp_ae\\"]'), ("03_cnn_", "13_mlp_"),
                     ("# 03 · CNN autoencoder", "# 13 · MLP autoencoder"), ("CNN autoencoder:", "MLP autoencoder:")]:
        assert old in source, old
        source = source.replace(old, new)
    (repo / "notebooks" / "13_mlp_autoencoder.ipynb").write_text(source, encoding="utf-8")


CHECK_AE = textwrap.dedent("""
    import json, sys
    import helpers as H
    from helpers.pipeline import runner

    work = sys.argv[1]
    assert H.__file__.startswith(sys.argv[2]), H.__file__  # the copy's helpers, not the repository's
    print("NOTEBOOKS", json.dumps([p.stem for p in runner.notebooks()]))
    print("QUICK", json.dumps([H.EXPERIMENTS[name].config("quick").steps for name in ("mlp_ae", "cnn_ae")]))
    runner.reproduce(only=["05", "13"], budget="tiny", fig_dir=work + "/figures", results_path=work + "/metrics.json",
                     runs_dir=work + "/runs", out_dir=work + "/executed", log_output=False)
    print("TABLE", json.dumps(H.TABLES["autoencoders"](H.read_metrics(work + "/metrics.json"))))
""")


def test_a_new_autoencoder_takes_four_files_keeps_the_suite_green_and_appears_in_tables_tsne_and_runs(
        tmp_path, synthetic_dir):
    repo = copy_of_the_repository(tmp_path)
    add_an_autoencoder(repo)
    assert changed_files(ROOT, repo) == ["helpers/models/autoencoders.py", "helpers/models/build.py",
                                         "helpers/studies/registry.py", "notebooks/13_mlp_autoencoder.ipynb"]
    run_the_package_tests(repo, STRUCTURE_TESTS)

    work = tmp_path / "work"
    work.mkdir()
    # the other rows of the table
    committed = json.loads((ROOT / "results" / "metrics.json").read_text(encoding="utf-8"))
    (work / "metrics.json").write_text(json.dumps({k: committed[k] for k in ("lstm_ae", "cnn_ae")}), encoding="utf-8")
    out = tagged(run_in(repo, ["-c", CHECK_AE, str(work), str(repo)], QUICKDRAW_DIR=synthetic_dir),
                 "NOTEBOOKS", "QUICK", "TABLE")

    assert out["NOTEBOOKS"][-1] == "13_mlp_autoencoder"  # `make reproduce` and QUICK=1 run it
    assert out["QUICK"][0] == out["QUICK"][1] > 0  # the autoencoders' quick budget
    metrics = json.loads((work / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["mlp_ae"]["latent_dim"] == 32 and metrics["mlp_ae"]["test_mse"] < 0.5
    # The runner splits each notebook's time: notebook 05 trained every model (the cache was empty), 13 none.
    times, training = metrics["timings"], metrics["training_times"]
    assert 0 < training["05_tsne"] < times["05_tsne"] and training["13_mlp_autoencoder"] == 0
    assert "| MLP AE | 419,120 | 32 | 12 |" in out["TABLE"], out["TABLE"]  # (784+1)*256 + 257*32 + 33*256 + 257*784
    assert sorted(metrics["latent"]["models"]) == ["cnn_ae", "lstm_ae", "mlp_ae", "vae_cnn", "vae_gru"]
    assert metrics["latent"]["models"]["mlp_ae"]["label"] == "MLP AE"
    assert (work / "figures" / "05_tsne.png").stat().st_size > 10_000
    assert (work / "figures" / "13_mlp_reconstructions.png").is_file()


# ---------------------------------------------------------------------------------------------------
# Adding a part to the VAE: a prior
# ---------------------------------------------------------------------------------------------------

def add_a_prior(repo: Path) -> None:
    models = repo / "helpers" / "models"
    # 1. Its class in a file of its own (``import helpers as H`` finds it).
    (models / "diagonal_prior.py").write_text(PRIOR_FILE, encoding="utf-8")
    # 2. models/build.py: its name in PRIORS (and the import).
    insert_before(models / "build.py", '    "mog": lambda', PRIOR_LINE)
    insert_before(models / "build.py", "from .encoders import", PRIOR_IMPORT)
    # 3. studies/registry.py: a candidate of the learned-priors study.
    insert_before(repo / "helpers" / "studies" / "registry.py", "    # The binarized CNN-CNN VAE", PRIOR_ENTRY)


CHECK_PRIOR = textwrap.dedent("""
    import json, sys
    import torch
    import helpers as H

    assert H.__file__.startswith(sys.argv[2]), H.__file__
    # Its maths against a known answer: the closed-form KL is the mean of log q - log p over samples of q.
    model = H.build_vae(prior="diagonal")
    with torch.no_grad():
        model.prior.mean.fill_(0.5)
        model.prior.logvar.fill_(-0.5)
    mu, logvar = torch.full((20000, 32), 0.2), torch.full((20000, 32), -1.0)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    estimate = (H.log_normal(z, mu, logvar) - model.log_prior(z)).mean()
    print("KL", json.dumps([float(model.kl(mu[:1], logvar[:1]).sum()), float(estimate)]))
    # What the learned-priors study does with the candidates: each trained without the validation part, compared by
    # its validation IWAE bound, one chosen.
    nb = H.Notebook(sys.argv[3], budget="tiny", runs_dir=sys.argv[1], progress="off")
    candidates = H.compare_priors(nb, iwae_k=4)
    print("CANDIDATES", json.dumps(candidates))
    print("CHOSEN", json.dumps(H.choose_prior(candidates)))
""")


def test_a_new_prior_is_a_file_of_its_own_and_the_learned_priors_study_compares_it(tmp_path, synthetic_dir):
    repo = copy_of_the_repository(tmp_path)
    add_a_prior(repo)
    assert changed_files(ROOT, repo) == ["helpers/models/build.py", "helpers/models/diagonal_prior.py",
                                         "helpers/studies/registry.py"]
    run_the_package_tests(repo, STRUCTURE_TESTS)

    out = tagged(run_in(repo, ["-c", CHECK_PRIOR, str(tmp_path / "runs"), str(repo), str(synthetic_dir)]),
                 "KL", "CANDIDATES", "CHOSEN")
    closed_form, estimate = out["KL"]
    assert closed_form == pytest.approx(estimate, abs=0.1)  # 32 dimensions; the estimate's se is about 0.02
    assert list(out["CANDIDATES"])[-1] == "vae_cnn_diagonal_minus_val"
    assert out["CANDIDATES"]["vae_cnn_diagonal_minus_val"]["label"] == "learned diagonal Gaussian prior"
    assert out["CHOSEN"] in out["CANDIDATES"]


# ---------------------------------------------------------------------------------------------------
# Adding a conditional design: one registry entry
# ---------------------------------------------------------------------------------------------------

CHECK_DESIGN = textwrap.dedent("""
    import json, sys
    import helpers as H

    assert H.__file__.startswith(sys.argv[2]), H.__file__
    # What notebook 06 does with the designs: each trained without the validation part, scored on it, one chosen.
    nb = H.Notebook(sys.argv[3], budget="tiny", runs_dir=sys.argv[1], progress="off")
    clf, _ = nb.judge()
    candidates = H.compare_designs(nb, clf, 40, H.classifier_outputs(clf, nb.X_val)[0])
    beyond = {"candidates": candidates, "chosen": H.choose_design(candidates)}
    print("CANDIDATES", json.dumps(candidates))
    print(H.TABLES["beyond-candidates"]({"beyond": beyond}))
""")


def test_a_new_conditional_design_needs_one_registry_entry_and_the_designs_study_compares_it(tmp_path, synthetic_dir):
    """Notebook 06 runs the registry's designs through helpers.compare_designs and choose_design; this test
    calls those two, as notebook 06 does, in a copy with one entry added (the nbval test runs notebook 06)."""
    repo = copy_of_the_repository(tmp_path)
    insert_before(repo / "helpers" / "studies" / "registry.py", "    # The CNN-CNN VAE with its KL weight",
                  DESIGN_ENTRY)
    assert changed_files(ROOT, repo) == ["helpers/studies/registry.py"]

    stdout = run_in(repo, ["-c", CHECK_DESIGN, str(tmp_path / "runs"), str(repo), str(synthetic_dir)])
    candidates = tagged(stdout, "CANDIDATES")["CANDIDATES"]
    assert list(candidates) == ["cvae_cnn_minus_val", "cvae_class_prior_decoder_minus_val",
                                "cvae_class_prior_minus_val", "cvae_class_prior_small_minus_val"]
    assert 0 <= candidates["cvae_class_prior_small_minus_val"]["val_adherence"] <= 1
    assert "class prior, 8-d latent" in stdout  # its row of the report's table of designs
