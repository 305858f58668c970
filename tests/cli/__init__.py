"""Tests of the ``rungen`` command line."""
