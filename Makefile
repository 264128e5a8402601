# The two commands of a fresh machine (README "Set-up, main job and tests"):
#   make demo   — set up .venv if it is missing or pyproject.toml changed, then run the main job (ddic demo)
#   make test   — the same set-up, then the whole test suite
# Each does its own set-up when it is missing and nothing when it is there. People who manage their own
# environment can use plain `pip install -e ".[test]"` instead (README).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.ddic-installed
DEMO_OUT ?= demo-output

.PHONY: demo test setup

demo: $(STAMP)
	$(VENV)/bin/ddic demo --out $(DEMO_OUT) --overwrite

test: $(STAMP)
	$(VENV)/bin/python -m pytest

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e ".[test]"
	touch $(STAMP)
