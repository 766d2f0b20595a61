"""python -m sweep.fwi: the sweep-fwi command."""
import sys

from .cli import main

sys.exit(main())
