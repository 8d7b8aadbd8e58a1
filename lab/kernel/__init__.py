"""Kernels: source trees, patch series, config fragments, builds, artifacts."""
