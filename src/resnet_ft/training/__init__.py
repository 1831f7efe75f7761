"""Fine-tuning: the run's story (plan, sources, step, loop and callbacks, state, artifacts),
distillation, pruning, and heads trained many at once for cross-validation (crossval/)."""
