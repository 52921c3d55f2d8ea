"""Model architectures (registry, the article's mlp, CNNs), summaries and pickle-free storage."""
