"""Metrics, whole-scene tiled inference, leaderboards and figures."""
