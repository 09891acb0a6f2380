"""Cleaning, chunking and embedding documents, and syncing them into the feature store."""
