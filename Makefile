# The two commands of the README. Both do the whole set-up first (idempotent:
# seconds when nothing changed; ~11-23 min on a new machine for the mmcv build).
PYTHON := .venv/bin/python
LINTED := mwam_mm tests tools benchmarks configs setup.py

.PHONY: setup demo test lint format benchmarks

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py $(ARGS)

test: setup lint
	$(PYTHON) -m pytest $(ARGS)

# the lint check of setup.cfg (flake8, isort, yapf), also run by `make test`
lint: setup
	$(PYTHON) -m flake8 $(LINTED)
	$(PYTHON) -m isort --check-only --diff $(LINTED)
	$(PYTHON) -m yapf --diff --recursive $(LINTED)

format: setup
	$(PYTHON) -m isort $(LINTED)
	$(PYTHON) -m yapf --in-place --recursive $(LINTED)

benchmarks: setup
	$(PYTHON) benchmarks/frm_speed.py
	$(PYTHON) benchmarks/mwam_overhead.py
