"""prescaler forecaster package."""
