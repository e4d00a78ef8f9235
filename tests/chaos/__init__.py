"""Chaos test of fencing tokens: worker processes, real faults, and a checker (see ``harness.py``)."""
