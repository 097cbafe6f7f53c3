"""Backbone families (timm, text encoders, decoder LMs) behind one contract; see ``base``."""
from .base import FAMILIES, Backbone, Family, LayerGroup, get_family, resolve_backbone, resolve_family

__all__ = ["FAMILIES", "Backbone", "Family", "LayerGroup", "get_family", "resolve_backbone", "resolve_family"]
