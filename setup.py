"""Build the Cython core.  Directives are set once here (docs/style.md item 5).

``MEMCG_EMU_CYTHON_DEBUG=1`` turns bounds/wraparound/initialized checks back on.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MEMCG_EMU_CYTHON_DEBUG") == "1"

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(
        "memcg_emu._core",
        ["src/memcg_emu/_core.pyx"],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    ),
] + [
    # the compiled timed engine (timed.TimedSim's run loop; its Python twin is timed.py), one
    # module per kernel subsystem (src/memcg_emu/_tsched.pxd gives the layout)
    Extension(
        f"memcg_emu.{name}",
        [f"src/memcg_emu/{name}.pyx"],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
    for name in ("_tbase", "_tlocking", "_tjbd2", "_twriteback", "_treaper", "_tsched")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
