"""Replay buffers: a uniform ring buffer, and one that stores each stacked frame once."""
