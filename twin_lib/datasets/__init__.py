"""Instruction and preference datasets from the feature store: pure stages, no I/O."""
