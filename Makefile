# Two commands on a fresh machine: `make run` (the quickstart recipe end to end) and `make test`.
# Both create .venv and install edgekd into it when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgekd-installed
RECIPE ?= recipes/quickstart.yaml
PYTEST_ARGS ?=

.PHONY: install run test test-fast clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# LiteRT's converter (litert-torch) lives in an environment of its own beside .venv (edgekd.export.litert_env).
LITERT_STAMP := $(VENV)/edgekd-litert/.edgekd-ready
$(LITERT_STAMP): $(STAMP)
	$(VENV)/bin/edgekd setup litert --force

# The tests also cover the optional `yolo` extra (Ultralytics, AGPL-3.0), installed without its opencv-python
# dependency: edgekd ships opencv-python-headless, and the two wheels install the same cv2 package.
YOLO_STAMP := $(VENV)/.edgekd-yolo-installed
$(YOLO_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-deps 'ultralytics>=8.3,<9'
	$(PY) -m pip install --quiet 'requests>=2.23' 'polars>=0.20' 'ultralytics-thop>=2.2.3'
	@touch $(YOLO_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/edgekd run $(RECIPE)

test: $(STAMP) $(YOLO_STAMP) $(LITERT_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) $(YOLO_STAMP) $(LITERT_STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
