"""`python -m trm.data build --task T [--scale S] --out DIR [key=value ...]`."""

import sys

from trm.data.build import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["build"]:
        args = args[1:]
    sys.exit(main(args))
