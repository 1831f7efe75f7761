"""The networks: the ResNet builder and its family table, the head, unfreezing, model files."""
