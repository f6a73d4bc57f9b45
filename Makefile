# Two commands do all set-up: `make run` (the main job) and `make test` (the tests).
# Both create or reuse .venv; a second call installs nothing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= results

.PHONY: run test test-slow lint docs bench clean-venv

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,ray,explore,umap,h5,tensorboard,docs]'
	touch $(STAMP)

run: $(STAMP)  ## the thesis study end to end (quick profile, mnist-5k), report in $(OUT)/
	$(VENV)/bin/vaelab reproduce --out $(OUT)

test: $(STAMP)  ## the default suite (about 3 minutes on 2 cores: one pytest-xdist worker per core)
	$(PY) -m pytest -q -n auto --dist worksteal

test-slow: $(STAMP)  ## end-to-end tests that train real models (CI runs them too)
	$(PY) -m pytest -q -m slow -n auto --dist worksteal

lint: $(STAMP)  ## ruff's pyflakes rules over the code, tests and benchmarks, then mypy on src/vaelab (CI runs it first)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

docs: $(STAMP)  ## the documentation site into site/ (strict: a broken link or reference fails; open site/index.html)
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) bench/train_throughput.py

clean-venv:
	rm -rf $(VENV)
