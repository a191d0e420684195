"""Autodiff twins of every hand-ruled op: the same forwards, no custom rules."""
