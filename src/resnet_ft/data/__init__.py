"""Image files -> model inputs: class folders and splits, decoding, geometry, augmentation."""
