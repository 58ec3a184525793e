# Two commands for a fresh machine:  make demo  and  make test.
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
# Built guest images are kept here between test runs (ignored by git).
export VOLANT_TEST_CACHE ?= $(CURDIR)/.cache/guest

.PHONY: bootstrap guest demo demo-stop test test-fast lint bench mutate

bootstrap:
	@scripts/bootstrap.sh

guest: bootstrap
	$(VENV)/bin/volar image build

demo: guest
	@scripts/demo.sh

demo-stop:
	@pidfile="$$($(VENV)/bin/python -c 'from volant_core.settings import load_settings; print(load_settings().state_dir)')/volantd.pid"; \
	if [ -f "$$pidfile" ]; then kill "$$(cat $$pidfile)" && rm -f "$$pidfile" && echo "volantd stopped"; else echo "volantd not started by make demo"; fi

# The tests need a few Debian packages more than a host running Volant does (scripts/bootstrap.sh).
test test-fast: export VOLANT_TEST_PACKAGES := 1

test: lint
	$(VENV)/bin/python -m pytest

test-fast: bootstrap
	$(VENV)/bin/python -m pytest -m "not e2e"

# The import package of every workspace member under hypervisors/ and plugins/ (found, never listed).
PACKAGE_MODULES = $(wildcard hypervisors/*/volant_* plugins/*/volant_*)

# Mutation testing of the core modules against the fast tests (slow; not in CI): docs/testing.md.
# Mutants tested at once: the selected tests mostly wait (for a daemon, a stream, a timeout), so a
# few per core keep the cores busy; mutmut's own time limit counts CPU seconds, not waiting.
MUTATE_JOBS ?= $(shell echo $$(( 3 * $$(nproc) )))
mutate: bootstrap
	$(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS)
	$(VENV)/bin/mutmut export-cicd-stats
	@echo "survivors (inspect one with: $(VENV)/bin/mutmut show NAME):"
	@$(VENV)/bin/mutmut results
	@$(VENV)/bin/python scripts/mutation_score.py

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check volant_core hypervisors plugins tests bench
	$(VENV)/bin/mypy volant_core $(PACKAGE_MODULES)

bench: bootstrap
	$(VENV)/bin/python bench/agent_proxy.py
	$(VENV)/bin/python bench/create_to_running.py
	$(VENV)/bin/python bench/api_server.py
	$(VENV)/bin/python bench/control_plane.py
	$(VENV)/bin/python bench/cli_startup.py
