"""mnist-tui: train a Keras CNN on MNIST and steer it live in the terminal."""
