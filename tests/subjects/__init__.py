"""Tests of the reference subjects."""
