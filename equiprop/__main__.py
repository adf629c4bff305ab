import sys

from equiprop.cli.main import main

sys.exit(main())
