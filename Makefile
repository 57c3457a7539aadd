# Two entry points, each sets itself up:  `make demo`  and  `make test`.
# The virtual environment lives in .venv. On a machine without an NVIDIA GPU the
# install follows constraints/cpu.txt (the CPU build of torch); with a GPU,
# pip picks torch's default (CUDA) build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# musicnn's pretrained weights ship in its wheel; its own requirements (TensorFlow, numpy < 1.17) are not ours:
# musicvae reads the checkpoints without TensorFlow, so the package is installed without its dependencies.
MUSICNN := musicnn==0.1.0
CONSTRAINTS ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints/cpu.txt)

.PHONY: install demo test test-fast lint clean

$(BIN)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(MUSICNN)
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/musicvae sweep sweeps/quickstart.yaml

test: install
	$(BIN)/python -m pytest -v

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check musicvae tests bench
	$(BIN)/ruff format --check musicvae tests bench

clean:
	rm -rf $(VENV) .musicvae mlflow.db
