"""The parts of ``secretkit.pydantic``: field markers, the sources, errors and the build state.

Kept apart from the public module so each file holds one job; everything here imports
pydantic, so nothing in ``secretkit`` outside ``secretkit.pydantic`` imports this package.
"""
