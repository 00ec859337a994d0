"""``python -m registry.client``: the ``rempart`` command."""

import sys

from registry.client.cli import main

sys.exit(main())
