"""Tests of the reference peer."""
