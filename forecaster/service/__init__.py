"""The forecaster service: REST API, Kubernetes external metrics API and KEDA external scaler.

Modules: config (YAML -> pydantic), history (where history comes from), retrain (one training job,
run in worker processes, stored through forecaster.registry), decisions (the bounded decisions log),
scheduler (when to retrain and refresh), cache (the served forecasts),
state (what HTTP and gRPC share), external_metrics (external.metrics.k8s.io shapes), app (FastAPI),
keda (gRPC scaler), server (assembly and uvicorn), cli (`prescaler forecaster serve`).
"""
