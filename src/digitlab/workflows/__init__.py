"""Workflows: what strings the lower layers together into the things a user runs.

train_run (build, fit, test, save one run folder), reproduce (the article end to end), artifacts
(diagnostics and cross-validation outputs written to disk), report / report_sections / report_html (the
HTML report), sweep (a grid of settings, cross-validated), ensemble (N seeds of one preset), calibrate
(a model's temperature fitted on held-out images), presets (a preset and flags -> model and TrainConfig).

This layer sits above data, models, train, evaluate and viz, and below inference, serve and cli.
"""
