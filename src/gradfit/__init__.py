"""gradfit: fit any differentiable model to data by gradient descent, and watch it learn."""
