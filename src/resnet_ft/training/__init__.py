"""Fine-tuning a head (and upper stages) on cached features: config, plan, loop, run files."""
