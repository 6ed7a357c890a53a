import sys

from gridverify.cli import main

sys.exit(main())
