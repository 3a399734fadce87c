import sys

from lxcflow.cli import main

sys.exit(main())
