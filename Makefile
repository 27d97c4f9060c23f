# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes: the stamp file is keyed on its hash.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
HOST ?= 127.0.0.1
PORT ?= 7860
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: setup run test lint bench eval index clean train

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build that lies on these machines (an unpinned one pulls CUDA).
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

index: setup
	$(BIN)/assistant ingest --if-missing

run: setup
	$(BIN)/assistant ingest --if-missing --defer
	$(BIN)/assistant serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check assistant ui.py tests
	$(BIN)/mypy assistant ui.py

eval: index
	$(BIN)/assistant eval eval/gold.jsonl

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/upload_latency.py
	$(BIN)/python bench/soak.py

# 10-minute soak of the served app (bench/soak.py, writes bench/soak.md): questions from 20 clients while
# staff upload, re-index and delete through the UI; 0 errors, 0 lost documents, memory within 20%.
.PHONY: soak
soak: setup
	$(BIN)/python bench/soak.py

# Refit the learned passage ranker, sentence scorer and answerability model, in that order, on the
# development sets (../shared/bench-data; fixed seed) and write them to assistant/models/. Needs
# scikit-learn (the `train` extra); `make test` never retrains.
train: setup
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/python -m assistant.train --passages
	$(BIN)/python -m assistant.train
	$(BIN)/python -m assistant.train --answerability --refit

clean:
	rm -rf $(VENV) index/chroma index/lexical
