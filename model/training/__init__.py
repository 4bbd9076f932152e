"""How the shipped weights are made: the auto grader's targets, training pairs and the corpus,
simulated atmospheres, losses, the training loop, the recipe and the held-out evaluation."""
