# The two commands: `make demo` and `make test`. Both set up what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: demo test bench lint system-packages venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

system-packages:
	@scripts/system-packages.sh

demo: venv
	@scripts/system-packages.sh --optional
	@scripts/demo.sh

test: venv system-packages
	@scripts/test.sh

bench: venv
	@scripts/system-packages.sh --bench
	@$(VENV)/bin/python -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf var/ .pytest_cache .ruff_cache
