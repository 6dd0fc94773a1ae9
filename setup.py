"""Maps the `peromesh` import namespace onto the top-level folders.

pyproject.toml cannot list packages that live under a remapped folder without
naming each one; this computes them so a new subpackage needs no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {"peromesh": "generated/peromesh", "peromesh.server": "server", "peromesh.bridge": "bridge"}


def _packages() -> list[str]:
    found: list[str] = []
    for name, folder in ROOTS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder) if not sub.startswith(tuple(
            r.split(".", 1)[1] for r in ROOTS if r.startswith(name + ".")))]
    return found


setup(packages=_packages(), package_data={"": ["py.typed", "*.pyi", "static/**/*", "js/**/*"]})
