"""provision: declarative environments for GPU image-to-3D apps."""

__version__ = "0.1.0"
