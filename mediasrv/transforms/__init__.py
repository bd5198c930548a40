"""Image transforms: options, format negotiation, the render pool and engine, and the service
the media endpoint hands rendered requests to. Plugin-facing names are re-exported from mediasrv."""

from mediasrv.transforms.operations import Choice, Integer, Number, Operation, flag

__all__ = ["Choice", "Integer", "Number", "Operation", "flag"]
