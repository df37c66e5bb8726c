"""Build the Cython extensions of the fast path (one per packet-path stage)."""

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


def extensions() -> list[Extension]:
    """One extension per fastpath/*.pyx file."""
    exts = []
    for pyx in sorted((HERE / "fastpath").glob("*.pyx")):
        name = f"fastpath.{pyx.stem}"
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
