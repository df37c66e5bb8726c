"""Build the Cython extensions: the fast path (one per packet-path stage) and the load generators."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent

# Hot-path modules run on untrusted packets with their own bounds checks, so
# Cython's per-index checks are off; C division semantics avoid a Python-style
# sign check on every modulo.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}


# Packages whose .pyx files are compiled; loadgen cimports the fast path's .pxd declarations.
CYTHON_PACKAGES = ("fastpath", "loadgen")


def extensions() -> list[Extension]:
    """One extension per .pyx file of the Cython packages."""
    exts = []
    for pyx in sorted(p for package in CYTHON_PACKAGES for p in (HERE / package).glob("*.pyx")):
        name = f"{pyx.parent.name}.{pyx.stem}"
        exts.append(
            Extension(
                name,
                [str(pyx.relative_to(HERE))],
                extra_compile_args=["-O3", "-fno-strict-aliasing"],
                libraries=["dl"],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=DIRECTIVES,
        include_path=[str(HERE)],
        nthreads=2,
    ),
)
