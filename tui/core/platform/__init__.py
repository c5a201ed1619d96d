"""The machine under Keras: the backend at run time, devices, placement, distribution, logs."""
