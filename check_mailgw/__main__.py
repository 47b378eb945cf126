"""python -m check_mailgw"""

from check_mailgw.cli import main

main()
