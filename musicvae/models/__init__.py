"""Embedding models: the PCA baseline and the VAE family."""
