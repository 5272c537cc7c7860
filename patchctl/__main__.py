from __future__ import annotations

from patchctl.cli import main

if __name__ == "__main__":
    main()
