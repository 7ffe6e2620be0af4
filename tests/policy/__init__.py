"""Tests of controller.policy: the pure scaling decision."""
