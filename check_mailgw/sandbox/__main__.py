"""python -m check_mailgw.sandbox: the mailgw-sandbox command."""

from check_mailgw.sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
