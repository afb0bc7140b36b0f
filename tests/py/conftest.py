# SPDX-License-Identifier: GPL-2.0-only
"""pytest setup for tests/py: import the memswap package from the tree.

The C extension is built in place (make ext) as daemon/memswap/_memswap*.so;
putting daemon/ first on sys.path makes `import memswap` find it.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMON_DIR = os.path.join(REPO, 'daemon')
if DAEMON_DIR not in sys.path:
    sys.path.insert(0, DAEMON_DIR)
