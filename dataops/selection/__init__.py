"""Selection strategies that decide which images are worth labeling next."""
