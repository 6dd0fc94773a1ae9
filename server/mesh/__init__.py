"""Composition of the mesh: which servers run in this process and how they find each other."""
