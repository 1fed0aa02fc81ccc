# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
EXTRAS := dev,train,eval,ray
LOCK := requirements-lock.txt
STAMP := $(VENV)/.installed
# -qq: pip's own notices stay out of the way; errors still print.
PIP := $(BIN)/pip install -qq

.PHONY: demo test lint install lock system-deps clean

$(BIN)/python:
	@echo "Creating $(VENV) with the tested versions of $(LOCK) (first run: a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) -c $(LOCK) --upgrade pip setuptools wheel

# torch first, pinned: an unpinned torch (pulled in by transformers/peft) is a multi-GB CUDA build.
# Then exactly the packages of $(LOCK) at their tested versions (pip, setuptools and wheel
# included), and the project itself without resolving anything (--no-deps): nothing the lock does
# not list can enter the venv, whatever the registry serves that day. The project is built with
# the locked setuptools (no isolated build environment, which would fetch the newest one);
# `pip check` then fails the install if the lock lacks a requirement of the project.
$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) -c $(LOCK) $(TORCH_PIN)
	@$(PIP) -r $(LOCK)
	@$(PIP) --no-deps --no-build-isolation -e ".[$(EXTRAS)]"
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@$(BIN)/rsgpt4v demo -o demo-output

# Debian packages some tests need, installed when missing: headless Chromium for the HTML report,
# a Java runtime for the METEOR caption metric (pycocoevalcap).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v java >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y -qq chromium chromium-driver default-jre-headless >/dev/null; }

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest

# Refresh the lock on purpose: a new .venv with the newest releases the ranges in pyproject.toml
# allow, the whole suite on it, and only then the new $(LOCK). Review `git diff $(LOCK)`, commit.
lock: system-deps
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) $(TORCH_PIN)
	$(PIP) -e ".[$(EXTRAS)]"
	touch $(STAMP)
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest
	{ echo "# Tested versions, written by 'make lock' after the suite passed on them (Python 3.11,"; \
	  echo "# Linux x86_64, CPU torch). 'make install/demo/test' install exactly these (-r $(LOCK))."; \
	  $(BIN)/pip freeze --all --exclude-editable | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > $(LOCK)
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-output build dist *.egg-info .pytest_cache .ruff_cache
