"""controller.policy: the scaling decision, pure (no I/O, no clock reads, no sleeps).

    from controller.policy import decide, PredictiveAutoscalerSpec, ReactiveInputs, PredictiveInputs
    decision, state = decide(spec, reactive_inputs, predictive_inputs, state, now)

Stages, one module each: reactive (the HPA v2 algorithm), capacity (rates -> replicas), predictive
(forecast at now + lead -> replicas, or abstain), behavior (stabilization, rate limits), decide
(merge, bounds, mode). See docs/architecture.md, "The decision".
"""

from controller.policy.decide import decide
from controller.policy.spec import PredictiveAutoscalerSpec
from controller.policy.types import (
    Condition,
    Decision,
    MetricObservation,
    PodCondition,
    PolicyInputError,
    PolicyState,
    PredictiveInputs,
    ReactiveInputs,
    Reason,
    StageResult,
)

__all__ = [
    "Condition", "Decision", "MetricObservation", "PodCondition", "PolicyInputError", "PolicyState",
    "PredictiveAutoscalerSpec", "PredictiveInputs", "ReactiveInputs", "Reason", "StageResult", "decide",
]
