"""A vLLM cluster simulator that replays real traces against the scaling policies (docs/architecture.md).

It imports controller.policy and forecaster.contract only: the forecasting engine a replay needs
comes in through forecaster.contract.replay's protocols, handed in by the composition root.
"""
