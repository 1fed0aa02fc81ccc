"""Checks of instruction data against the source records and boxes."""
