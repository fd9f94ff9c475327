"""Tape-to-tape passes: reverse and forward sweeps, dead-code elimination."""
