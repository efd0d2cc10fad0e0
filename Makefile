# Developer shortcuts.  The README's two commands do not need make.
CYTHON_DIRECTIVES = -X language_level=3 -X boundscheck=False -X wraparound=False \
                    -X initializedcheck=False -X nonecheck=False -X cdivision=True

.PHONY: build test bench annotate

build:
	python setup.py build_ext --inplace

test: build
	MEMCG_EMU_REQUIRE_EXT=1 python -m pytest -p no:cacheprovider

bench: build
	python -m pytest benchmarks --benchmark-json=build/bench.json
	python benchmarks/ratios.py build/bench.json

# cython -a with the directives of setup.py, written under build/ so the in-place _core.c is
# never replaced by one built with other directives.  Open build/annotate/_core.html.
annotate:
	mkdir -p build/annotate
	cython -a $(CYTHON_DIRECTIVES) -o build/annotate/_core.c src/memcg_emu/_core.pyx
