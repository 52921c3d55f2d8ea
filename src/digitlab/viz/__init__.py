"""Plots: each function returns a matplotlib Figure; saving goes through digitlab.files.save_figure."""
