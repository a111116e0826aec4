"""Helpers shared by the tests of every layer: test modules import helpers from here, not from each other."""
