"""The real-Prometheus fixtures, imported from the shared plugin module."""

from tests.promfixture import (  # noqa: F401 (pytest finds fixtures by name in conftest)
    prometheus_basic_auth,
    prometheus_scraping,
    prometheus_server,
    vllm_exporter,
)
