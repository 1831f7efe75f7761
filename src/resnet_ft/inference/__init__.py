"""Running a trained model: the predictor interface, its options, and the loaders of every
kind of model (run directory, ImageNet backbone, exports); ``predict`` and Grad-CAM."""
