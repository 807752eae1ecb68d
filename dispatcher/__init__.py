"""Acute response dispatcher: hospital, sensor and nurse events in; explained escalations out."""

__version__ = "0.1.0"
