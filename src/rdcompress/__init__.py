"""rdcompress: compress trained PyTorch models by rate-distortion theory."""

__version__ = "0.1.0"
