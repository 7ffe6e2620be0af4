"""A real vLLM on this machine's CPU: the tiny model, one replica's process, and where they live.

vLLM runs in its own virtualenv (`.venv-vllm`, `make vllm-venv`) because its torch/transformers pins
must not meet the forecaster's; this package only starts its interpreter, never imports vLLM.
"""
