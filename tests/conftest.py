"""Shared pytest set-up: the real-Prometheus fixtures are available to every test directory."""

pytest_plugins = ["tests.promfixture"]
