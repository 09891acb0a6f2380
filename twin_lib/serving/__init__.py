"""The inference side: retrieval over the feature store, generation, and the KServe predictor."""
