"""Evaluation metrics: Fréchet distance, KID, IS, precision/recall, density/coverage, 2D mode coverage."""
