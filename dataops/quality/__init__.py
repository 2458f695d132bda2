"""Label quality from the model: label issues found by confident learning (cleanlab)."""
