"""Fake device tools for the hardware-backend tests (see README.md beside this file)."""
