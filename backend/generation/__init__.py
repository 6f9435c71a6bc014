"""Generations: render engine deltas into each dialect's events."""
