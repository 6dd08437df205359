"""``python -m rdcompress`` = the ``rdcompress`` command."""

import sys

from rdcompress.cli.main import main

sys.exit(main())
