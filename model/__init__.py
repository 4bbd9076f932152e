"""The colorization model: residual U-Net, losses, training, shipped weights."""
