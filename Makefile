# Runespoor: `make setup`, `make test`, `make demo`. Every target that can start DDS runs with
# loopback-only discovery and a ROS domain of its own (DEVELOPERS.md rule 1).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)

export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell python3 -c 'import random; print(random.randint(20, 99))')
export PYTHONUNBUFFERED := 1
ifneq ($(wildcard $(SHARED)/data),)
export RUNESPOOR_DATA ?= $(SHARED)/data
endif
ifneq ($(wildcard $(SHARED)/models),)
export RUNESPOOR_MODELS ?= $(SHARED)/models
endif

.PHONY: setup test test-stress test-onecore demo demo-quick bench clean help

help:
	@echo "make setup   - venv with ROS 2 Kilted wheels, torch (CPU), the runespoor package built into it"
	@echo "make test    - the whole test suite (what CI runs)"
	@echo "make test-stress  - the suite with one CPU core taken by stress-ng (RUNS=5 for five in a row)"
	@echo "make test-onecore - the suite pinned to one core with taskset (RUNS=5 for five in a row)"
	@echo "make demo    - the main job: replay -> edge -> cloud -> CAC on real data, results in runs/"
	@echo "make bench   - runespoor bench --quick (bench.json)"

setup:
	@tools/setup_env.sh

test: setup
	$(PY) -m pytest test

# Speed-independence checks: the suite must pass on a starved machine too (tools/test_stress.sh).
RUNS ?= 1
test-stress: setup
	tools/test_stress.sh hog $(RUNS)

test-onecore: setup
	tools/test_stress.sh onecore $(RUNS)

demo: setup
	$(VENV)/bin/runespoor demo

demo-quick: setup
	$(VENV)/bin/runespoor demo --quick

bench: setup
	$(VENV)/bin/runespoor bench --quick --out bench.json

clean:
	rm -rf build install log .pytest_cache
