"""Postcall: post-call processing with verified, span-grounded extractions."""

__version__ = "0.1.0"
