"""Kubernetes packaging: render and validate the manifests, generate KFP objects, submit runs."""
