# Two commands set everything up on a fresh machine with Python 3.11 and pip:
#   make demo   -> virtual environment, then prepare -> train sweep -> evaluate on the embedded synthetic dataset
#   make test   -> virtual environment, then the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUTPUTS ?= outputs
DEMO_DIR := $(OUTPUTS)/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
DEMO_DATA ?=   # extra dataset overrides for prepare and train, and training overrides (the README test shrinks
DEMO_TRAIN ?=  # the demo with them)

.PHONY: install demo test benchmarks gpu-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# one pip command: the torch pin must resolve together with lightning/torchmetrics (environment.md)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) prepare.py $(DEMO_DATA)
	$(PY) train.py --multirun experiment=quick hydra.sweep.dir=$(DEMO_DIR)/runs $(DEMO_DATA) $(DEMO_TRAIN)
	$(PY) evaluate.py runs=$(DEMO_DIR)/runs hydra.run.dir=$(DEMO_DIR)/leaderboard

test: install
	WANDB_MODE=offline NO_GCE_CHECK=true SQLALCHEMY_SILENCE_UBER_WARNING=1 $(PY) -m pytest -q

benchmarks: install
	for b in benchmarks/[!_]*.py; do $(PY) $$b || exit 1; done

# every model's training and inference speed on this machine's GPU (< 8 min) -> benchmarks/results/<device>.md/.json
gpu-check: install
	$(PY) benchmarks/device_check.py

clean:
	rm -rf outputs multirun wandb
