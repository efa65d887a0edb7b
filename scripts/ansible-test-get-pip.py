"""Stand-in for the get-pip script ansible-test --venv downloads.

ansible-test fetches get-pip from a host this network cannot reach. It runs
this file with the arguments it would pass to get-pip; we install pip from the
pip wheel that `make setup` downloads from PyPI next to this file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "pip-24.2-py3-none-any.whl"))

from pip._internal.cli.main import main

ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *ARGS]))
