# rasid: `make` installs everything, prepares the shared datasets, trains the default bundle on the offline
# base and evaluates it; `make test` runs the test suite. PRESET=quick trains a smaller bundle in minutes.

PYTHON ?= python3
VENV := .venv
RASID := $(VENV)/bin/rasid
SHARED ?= ../shared/data
# the offline base encoder, kept inside the project here (without --base, `rasid train` uses the user's cache)
BASE ?= models/base/e5-small-ar
# where `rasid base` finds its trimming corpus
export RASID_SHARED_DATA := $(SHARED)
DATA := data
MODEL ?= models/rasid-default
REPORTS ?= reports/rasid-default
PRESET ?= full

# full: the published recipe (benchmarks/quality.py scores it; docs/accuracy.md has the ablations).
# quick: one short epoch, for a first look.
ifeq ($(PRESET),quick)
TRAIN_OPTIONS := --epochs 1 --max-length 96
else
TRAIN_OPTIONS := --epochs 2 --max-length 128
endif
# Embeddings and the three lowest layers stay as pretrained (faster steps, no measured loss). Mawqif's sentiment
# and sarcasm labels can train as auxiliary heads (TASKS=...,sentiment,sarcasm): over two seeds they changed no
# score by more than the spread between seeds, for about a third more training (docs/accuracy.md).
TASKS ?= topic,stance,claim,news_claim
TRAIN_OPTIONS += --tasks $(TASKS) --batch-size 16 --lr 5e-5 --freeze-embeddings --freeze-layers 3 --save-steps 300

DATASETS := mawqif asnd ans austr
TRAIN_FILES := $(DATASETS:%=$(DATA)/%.train.jsonl) $(DATA)/baly.train.jsonl
VAL_FILES := $(DATASETS:%=$(DATA)/%.val.jsonl) $(DATA)/baly.val.jsonl

.PHONY: all setup data base train evaluate test quick clean-data
all: evaluate

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

base: setup
	$(RASID) base --out $(BASE)

# Each dataset from its original files, then a validation split by group (Baly: fold 4, i.e. by claim).
data: $(DATA)/.prepared
$(DATA)/.prepared: $(VENV)/.installed
	mkdir -p $(DATA)
	$(RASID) prepare mawqif --source $(SHARED)/mawqif --out $(DATA)/mawqif.jsonl --skip-bad-rows
	$(RASID) prepare asnd --source $(SHARED)/asnd --out $(DATA)/asnd.jsonl
	$(RASID) prepare ans --source $(SHARED)/ans_khouja2020 --out $(DATA)/ans.jsonl
	$(RASID) prepare austr --source $(SHARED)/austr --out $(DATA)/austr.jsonl --skip-bad-rows
	$(RASID) prepare baly --source $(SHARED)/unifiedfc_baly2018 --folds 1,2,3 --out $(DATA)/baly.train.jsonl
	$(RASID) prepare baly --source $(SHARED)/unifiedfc_baly2018 --folds 4 --out $(DATA)/baly.val.jsonl
	$(RASID) prepare baly --source $(SHARED)/unifiedfc_baly2018 --folds 1,2,3 --granularity articles --out $(DATA)/baly_articles.train.jsonl
	$(RASID) prepare baly --source $(SHARED)/unifiedfc_baly2018 --folds 4 --granularity articles --out $(DATA)/baly_articles.val.jsonl
	for name in $(DATASETS); do \
	  $(RASID) split --data $(DATA)/$$name.jsonl --train-out $(DATA)/$$name.train.jsonl \
	    --val-out $(DATA)/$$name.val.jsonl --val-fraction 0.15 || exit 1; done
	touch $@

train: $(MODEL)/rasid.json
# Training ends by fusing each task with an n-gram model; then the article verdict is fitted on whole articles.
$(MODEL)/rasid.json: $(DATA)/.prepared
	$(RASID) base --out $(BASE)
	$(RASID) train --base $(BASE) --data $(TRAIN_FILES) --val-data $(VAL_FILES) --out $(MODEL) $(TRAIN_OPTIONS)
	$(RASID) fuse --documents --model $(MODEL) --data $(DATA)/baly_articles.train.jsonl \
	  --val-data $(DATA)/baly_articles.val.jsonl --tasks news_claim

# One report per validation set, each with the TF-IDF baseline trained on the matching training file.
evaluate: $(MODEL)/rasid.json
	for name in $(DATASETS) baly; do \
	  $(RASID) evaluate --model $(MODEL) --data $(DATA)/$$name.val.jsonl --report $(REPORTS)/$$name \
	    --baseline --train $(DATA)/$$name.train.jsonl || exit 1; done
	$(RASID) evaluate --model $(MODEL) --data $(DATA)/baly_articles.val.jsonl --documents --tasks news_claim \
	  --report $(REPORTS)/baly_articles --baseline --train $(DATA)/baly_articles.train.jsonl

quick:
	$(MAKE) PRESET=quick MODEL=models/rasid-quick REPORTS=reports/rasid-quick

# Formatting and the linter's small rule set ([tool.ruff] in pyproject.toml) first, then the tests.
test: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

clean-data:
	rm -rf $(DATA)
