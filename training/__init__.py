"""rasid training side: data recipes, fine-tuning, evaluation, the command line."""
