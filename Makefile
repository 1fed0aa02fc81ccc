# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint install system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

# torch first, pinned: an unpinned torch (pulled in by transformers/peft) is a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e ".[dev,train,eval,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rsgpt4v demo -o demo-output
	@echo "Outputs are in demo-output/: records.jsonl, instructions.jsonl, report/index.html, llava.json (images in demo-output/sample/)."

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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-output build dist *.egg-info .pytest_cache .ruff_cache
