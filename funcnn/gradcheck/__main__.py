"""``python -m funcnn.gradcheck``: see :func:`funcnn.gradcheck.report.main`."""

import sys

from funcnn.gradcheck.report import main

sys.exit(main())
