"""Fuzz tests: random and structure-aware DNS messages against the resolver and the live servers.

``strategies.py`` makes the inputs, ``harness.py`` runs them and checks the
invariants; ``scripts/fuzz.py`` is the long run, ``scripts/fuzz_atheris.py``
the coverage-guided one.
"""
