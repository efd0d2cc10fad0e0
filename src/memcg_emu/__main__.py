"""``python -m memcg_emu`` is the ``memcg-emu`` command."""
from .cli import main

raise SystemExit(main())
