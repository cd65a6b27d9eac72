import sys

from booklinks import main

sys.exit(main(sys.argv[1:]))
