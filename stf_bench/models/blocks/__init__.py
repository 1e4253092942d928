"""Layers and losses used by several architectures."""
