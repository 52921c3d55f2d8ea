"""Evaluation: metrics (pure), cross-validation, diagnostics."""
