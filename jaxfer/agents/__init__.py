"""Agents: each exposes ``make_train(cfg, env, freeze=None)`` returning pure, jittable functions."""
