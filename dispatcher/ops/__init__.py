"""Operator tasks kept apart from the server: the reconciler and topic administration."""
