"""Hierarchy Drafting: W, S, L databases queried in order of temporal locality."""
