# quickdraw-ae: `make reproduce` (the main job) and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A relative QUICKDRAW_DIR is taken from the folder make runs in; notebooks run from notebooks/.
ifdef QUICKDRAW_DIR
export QUICKDRAW_DIR := $(abspath $(QUICKDRAW_DIR))
endif
ifeq ($(QUICK),1)
RUN_FLAGS := --quick
REPORT_OUT := runs/quick/report.md
METRICS := runs/quick/metrics.json
else
REPORT_OUT := report.md
METRICS := results/metrics.json
endif
DATA_DIR := $(or $(QUICKDRAW_DIR),data/quickdraw_subset_np)

.PHONY: setup data reproduce report seeds judges precision-check test bench gpu-check rehearse compat lab clean

# PIP_FLAGS: extra flags of the two pip installs (.ci/run passes --no-compile).
PIP_FLAGS ?=
setup: $(STAMP)

# Reinstalled only when requirements.txt or pyproject.toml change: a second call starts at once.
# Then JupyterLab's settings for this environment (`make lab`): no "notified about official Jupyter news?"
# prompt and no update check, both of which would ask the internet. A user's own settings still override them.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make setup: quickdraw-ae needs Python 3.11 or newer, and PYTHON=$(PYTHON) is" \
			"$$($(PYTHON) --version 2>&1 || echo 'not found')."; \
		echo "  Point PYTHON at one: make setup PYTHON=python3.12 (or a full path, e.g. from pyenv or python.org)"; \
		exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_FLAGS) -r requirements.txt
	$(PY) -m pip install --quiet $(PIP_FLAGS) --no-deps -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# The data folder: kept as is when it loads; else built from Google's QuickDraw files (needs a network).
data: $(STAMP)
	@if [ -d "$(DATA_DIR)" ]; then $(PY) -c "import helpers; helpers.load_quickdraw('$(DATA_DIR)', with_md5=False); print('data: $(DATA_DIR) is valid')"; \
	else $(PY) -W ignore::RuntimeWarning -m helpers.data.download --out "$(DATA_DIR)"; fi

reproduce: data
	$(PY) -m helpers.pipeline.runner $(RUN_FLAGS) $(if $(JOBS),--jobs $(JOBS)) $(if $(PARAMS),$(PARAMS))
	$(MAKE) --no-print-directory report

# The seed spread of the headline numbers: notebooks 02-06 rerun with seeds 1 .. SEEDS-1 (seed 0 is
# `make reproduce`'s run), models from the cache, into runs/seeds/; the summary goes into the results file's
# seeds section and the report. LSTM_SEEDS (default SEEDS) caps the seeds of the LSTM autoencoder.
SEEDS ?= 3
LSTM_SEEDS ?= $(SEEDS)
seeds: data
	$(PY) -m helpers.pipeline.reruns --seeds $(SEEDS) --lstm-seeds $(LSTM_SEEDS) $(RUN_FLAGS)
	$(MAKE) --no-print-directory report

# The judge's own effect: notebooks 04, 06, 10 and 12 rerun on seed 0's models with the evaluation classifier trained with
# seeds 1 .. JUDGES-1 (the report's judge is seed 0; runs/judges/), the sample numbers and claims of each judge in the
# results file's judges section and the report.
JUDGES ?= 3
judges: data
	$(PY) -m helpers.pipeline.reruns --judges $(JUDGES) $(RUN_FLAGS)
	$(MAKE) --no-print-directory report

# What bf16 costs in quality: notebooks 02-04 rerun with -p precision bf16 (into runs/precision/), their headline
# numbers beside the fp32 run's in the results file's precision section and the report.
PRECISION ?= bf16
precision-check: data
	$(PY) -m helpers.pipeline.reruns --precision $(PRECISION) $(RUN_FLAGS)
	$(MAKE) --no-print-directory report

report: $(STAMP)
	$(PY) -W ignore::RuntimeWarning -m helpers.report.render --metrics $(METRICS) --template report.md --out $(REPORT_OUT)
ifneq ($(QUICK),1)
	$(PY) -W ignore::RuntimeWarning -m helpers.report.render --metrics $(METRICS) --template README.md
endif

# The tests are mostly separate processes (kernels, papermill, make), so two workers shorten the wall time on
# 2 cores. --dist loadfile keeps each test file on one worker, in order (notebook 05 reuses 02-04's models);
# --no-loadscope-reorder hands the files out in collection order, the longest first (tests/conftest.py).
TEST_JOBS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# Training throughput of every model (ours and a plain loop, fp32 and bf16) and the projected `make reproduce`
# time: bench/README.md. More repetitions: make bench BENCH_ARGS="--reps 5"
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/bench_training.py $(BENCH_ARGS)

# The GPU check (bench/gpu_check.py): device, exact resume after SIGINT, determinism, throughput against the CPU, and
# notebooks 02-04 at the quick budget on the GPU and the CPU side by side; one JSON in runs/gpu_check/. It installs
# nothing: it runs with .venv's Python when there is one, else with PYTHON (Colab: pip install -e ., keeping its torch,
# then make gpu-check PYTHON=python).
GPU_CHECK_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
GPU_CHECK_ARGS ?=
gpu-check:
	$(GPU_CHECK_PY) bench/gpu_check.py $(GPU_CHECK_ARGS)

# A rehearsal at the course's size (20,000 + 5,000 synthetic drawings): every notebook, full evaluation sizes,
# one-epoch models. REHEARSE_SIZE=sample rehearses on the folder of QUICKDRAW_DIR instead.
REHEARSE_SIZE ?= course
rehearse: $(STAMP)
	$(PY) -W ignore::RuntimeWarning bench/rehearse.py --size $(REHEARSE_SIZE)

# The declared dependency ranges beside a torch that is already installed (README, "Where it runs"): a fresh venv
# that holds torch 2.13.0 (the CPU build; on the course machines its wheel lies on disk), then `pip install -e .`,
# which must keep it; then notebooks 02 and 03 with the tiny budget on synthetic drawings there.
COMPAT_VENV ?= runs/compat/venv
COMPAT_TORCH ?= torch==2.13.0
compat:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make compat: needs PYTHON >= 3.11"; exit 1; }
	rm -rf $(COMPAT_VENV)
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet "$(COMPAT_TORCH)"
	$(COMPAT_VENV)/bin/python -m pip list --format=json > $(COMPAT_VENV)/before.json
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e .
	$(COMPAT_VENV)/bin/python bench/compat.py --before $(COMPAT_VENV)/before.json --torch "$(COMPAT_TORCH)"

# Jupyter refuses to run as root unless told to: containers and the course machines run as root. The kernels
# talk to the server over Unix sockets (IPC), as papermill's do (helpers/pipeline/runner.py).
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --KernelManager.transport=ipc $(LAB_ARGS) notebooks/

clean:
	rm -rf runs/notebooks runs/notebooks-quick runs/quick
