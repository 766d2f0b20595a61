"""``python -m sweep.bench``: the same as the ``sweep-bench`` command."""
from .cli import main

main()
