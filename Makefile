# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and installs
# what it needs first; the stamp files make the second run skip the install.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

# scikit-learn's gradient boosting starts one OpenMP thread per core in every process; with pytest,
# the simulator's parallel replays and the service's training workers on 2 cores, that
# oversubscription made one GBM fit take 23-56 CPU-s instead of 3.9 s. One thread per process.
export OMP_NUM_THREADS ?= 1

.PHONY: demo test lint bench prometheus clean image

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	touch $@

$(VENV)/.forecaster: $(VENV)/.created pyproject.toml
	$(PIP) install -e '.[forecaster]'
	touch $@

$(VENV)/.dev: $(VENV)/.created pyproject.toml
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.forecaster

demo: $(VENV)/.forecaster
	$(VENV)/bin/prescaler demo

# The Prometheus tests run Debian's prometheus and promtool; install them where they are missing and
# we may (CI runs as root on Debian). Elsewhere those tests skip and say how to install them.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's prometheus package"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else echo "prometheus not found and not root: the Prometheus tests will skip (apt-get install prometheus)"; fi

# The layering contracts (pyproject.toml [tool.importlinter]), ruff and mypy run before the tests:
# a broken layer or a type error fails `make test` as a failing test would.
lint: $(VENV)/.dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

# The image the manifests name (configs/*/deployment.yaml). EXTRAS= builds a controller-only image.
IMAGE  ?= ghcr.io/prescaler/prescaler:0.1.0
EXTRAS ?= forecaster
image:
	@builder=$$(for b in podman buildah docker; do command -v $$b >/dev/null && echo $$b && break; done); \
	if [ -z "$$builder" ]; then echo "make image needs podman, buildah or docker"; exit 1; fi; \
	if [ "$$builder" = buildah ]; then buildah bud --build-arg EXTRAS=$(EXTRAS) -t $(IMAGE) .; \
	else $$builder build --build-arg EXTRAS=$(EXTRAS) -t $(IMAGE) .; fi

test: lint prometheus
	$(PY) -m pytest -q

bench: $(VENV)/.dev prometheus
	$(PY) -m bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache
