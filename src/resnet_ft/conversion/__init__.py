"""Checkpoint -> Keras backbone: one reader per checkpoint family, one porting step for all."""
