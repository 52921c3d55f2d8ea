"""Training: config, the fit loop, history, optimizers and schedules, progress, augmentation, checkpoints."""
