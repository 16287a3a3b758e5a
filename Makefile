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

.PHONY: setup data reproduce report test bench lab clean

setup: $(STAMP)

# Reinstalled only when requirements.txt or pyproject.toml change: a second call starts at once.
# Then JupyterLab's settings for this environment (`make lab`): no "notified about official Jupyter news?"
# prompt and no update check, both of which would ask the internet. A user's own settings still override them.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# The data folder: kept as is when it loads; else built from Google's QuickDraw files (needs a network).
data: $(STAMP)
	@if [ -d "$(DATA_DIR)" ]; then $(PY) -c "import helpers; helpers.load_quickdraw('$(DATA_DIR)', with_md5=False); print('data: $(DATA_DIR) is valid')"; \
	else $(PY) -W ignore::RuntimeWarning -m helpers.download --out "$(DATA_DIR)"; fi

reproduce: data
	$(PY) -m helpers.runner $(RUN_FLAGS) $(if $(PARAMS),$(PARAMS))
	$(MAKE) --no-print-directory report

report: $(STAMP)
	$(PY) -W ignore::RuntimeWarning -m helpers.report --metrics $(METRICS) --template report.md --out $(REPORT_OUT)
ifneq ($(QUICK),1)
	$(PY) -W ignore::RuntimeWarning -m helpers.report --metrics $(METRICS) --template README.md
endif

# The tests are mostly separate processes (kernels, papermill, make), so two workers shorten the wall time on
# 2 cores. --dist loadfile keeps each test file on one worker, in order (notebook 05 reuses 02-04's models).
TEST_JOBS ?= 2
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

# More measurements narrow the printed interval: make bench BENCH_ARGS="--reps 15"
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/bench_autoencoders.py $(BENCH_ARGS)

# Jupyter refuses to run as root unless told to: containers and the course machines run as root. The kernels
# talk to the server over Unix sockets (IPC), as papermill's do (helpers/runner.py).
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --KernelManager.transport=ipc $(LAB_ARGS) notebooks/

clean:
	rm -rf runs/notebooks runs/notebooks-quick runs/quick
