import sys

from gridverify.cli import console_main

sys.exit(console_main())
