"""Forecasting models behind one interface (see base.Estimator)."""
