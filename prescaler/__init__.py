"""The composition root: the `prescaler` command line, the demo, the report and the replay review.

The only package that imports both sides. `forecaster/` trains and serves forecasts; `controller/`
holds the in-cluster loop, the pure scaling policy (`controller.policy`) and the simulator
(`controller.sim`); they meet at `forecaster.contract`. What needs both (a replay with a real
forecaster, a controller with the forecaster in-process, a review of forecasts and replays) is
wired here, and handed to each side through the contract's interfaces. See docs/architecture.md.
"""
