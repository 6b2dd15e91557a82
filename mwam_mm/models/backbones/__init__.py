from .dual_stream import DualStreamBackbone

__all__ = ['DualStreamBackbone']
