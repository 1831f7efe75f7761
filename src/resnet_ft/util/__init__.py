"""Small jobs with one home each: atomic writes, hashing, CSV text, progress, native stderr."""
