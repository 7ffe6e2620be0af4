# prescaler's image: `make image` builds it (podman, buildah or docker). One image serves both
# deployables (configs/controller and configs/forecaster run `prescaler controller run` and
# `prescaler forecaster serve`); EXTRAS="" builds a controller-only image without the statistics
# libraries (the controller never imports them: docs/architecture.md).

# ---- build: the wheel, from the source tree only ------------------------------------------------
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY forecaster ./forecaster
COPY prescaler ./prescaler
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- runtime: the wheel and its dependencies, run as a fixed non-root user ----------------------
FROM python:3.11.11-slim-bookworm AS runtime
ARG EXTRAS=forecaster
# 65532 is the UID/GID the manifests' securityContext runs as (runAsNonRoot needs a numeric user).
RUN groupadd --system --gid 65532 prescaler \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin prescaler
COPY --from=build /wheels /wheels
# The version comes from the wheel built above; its dependencies are bounded by pyproject.toml.
# hadolint ignore=DL3013
RUN wheel="$(find /wheels -name 'prescaler-*.whl')" \
    && pip install --no-cache-dir "${wheel}${EXTRAS:+[${EXTRAS}]}" \
    && rm -rf /wheels
# One OpenMP thread per process (the Makefile's reason: GBM fits oversubscribe the pod's CPUs).
ENV OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
ENTRYPOINT ["prescaler"]
CMD ["--help"]
