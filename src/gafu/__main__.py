"""`python -m gafu …` runs the CLI (also what `accelerate launch -m gafu train …` uses)."""

import sys

from gafu.cli import main

if __name__ == "__main__":
    sys.exit(main())
