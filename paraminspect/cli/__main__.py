"""``python -m paraminspect.cli``, the same as ``python -m paraminspect``."""

from . import main

main()
