"""The colorization model: the residual U-Net, its tone prior's constants and its weights (what
inference loads); how the weights are made is :mod:`basemap.model.training`."""
