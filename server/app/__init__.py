"""The composition root: typed settings (settings.py), the core built in order (core.py), every
server of this process started and stopped in one place (root.py), the mesh token (token.py)."""
