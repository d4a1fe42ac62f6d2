# make setup | make student [SIZE=smol] | make test | make bench | make lint
SHELL := /bin/bash
SIZE ?= smol
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
SIZES = $(sort $(basename $(notdir $(wildcard recipes/*.yaml))))

.PHONY: setup student check-size test test-slow bench lint

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

check-size:
	@if [ ! -f recipes/$(SIZE).yaml ]; then \
	  echo "unknown SIZE=$(SIZE); valid sizes: $(SIZES)" >&2; exit 2; fi

student: check-size setup
	$(VENV)/bin/distill run recipes/$(SIZE).yaml

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m "not gpu"  # the whole suite, slow tests included

bench: setup
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: setup
	$(VENV)/bin/ruff check distill tests bench scripts
