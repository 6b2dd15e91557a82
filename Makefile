# The two commands of the README. Both do the whole set-up first (idempotent:
# seconds when nothing changed; ~11-23 min on a new machine for the mmcv build).
PYTHON := .venv/bin/python

.PHONY: setup demo test benchmarks

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py $(ARGS)

test: setup
	$(PYTHON) -m pytest $(ARGS)

benchmarks: setup
	$(PYTHON) benchmarks/frm_speed.py
	$(PYTHON) benchmarks/mwam_overhead.py
