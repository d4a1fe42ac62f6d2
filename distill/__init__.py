"""distill: a factory for small reasoning models.

problems -> teacher sampling -> rejection filter -> SFT -> evaluation -> GGUF export.
"""

__version__ = "0.1.0"
