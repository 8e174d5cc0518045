"""``python -m paraminspect``."""

from .cli import main

main()
