# Two commands: `make demo` and `make test`. Both create .venv if missing.
# TORCH is what pip installs when the venv has no torch yet; GPU users can pre-install their own
# torch in .venv (or pass TORCH=) and it is kept.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gankit-installed

.PHONY: demo test test-fast clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || { test -z "$(TORCH)" || $(PY) -m pip install -q "$(TORCH)"; }
	$(PY) -m pip install -q -e ".[dev,tensorboard,onnx,serve,privacy,chem,flower]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gankit train digits-dcgan --out runs/demo --force
	$(VENV)/bin/gankit sample runs/demo -n 64 --seed 0 --out runs/demo/demo-grid.png

# pytest exits 5 when it collects no test: that is a failure here, not a pass.
test: $(STAMP)
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
