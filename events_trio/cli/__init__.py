"""The ``events-trio`` command line, one module per subcommand."""

from .main import main as main
