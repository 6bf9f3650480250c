"""Evaluating trained models: the labelled data of each task, made as the model's training data
were, and the paper's figures to compare with."""
