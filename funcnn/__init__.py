"""funcnn: pure-function layers with hand-written backward rules, for studying backprop."""

__version__ = "0.1.0"
