import sys

from mediasrv.cli import main

# Guarded: render processes are spawned with multiprocessing, which imports the main module.
if __name__ == "__main__":
    sys.exit(main())
