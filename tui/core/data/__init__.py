"""MNIST: its sources, which one a run used, preprocessing, augmentation, the input pipeline."""
