"""Access to a booted guest: run commands, copy files, read kernel messages."""

from .base import Guest, GuestUnreachable

__all__ = ["Guest", "GuestUnreachable"]
