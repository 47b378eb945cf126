"""python -m check_mailgw.sandbox: the mailgw-sandbox command."""

from check_mailgw.sandbox.mailgw_sandbox import main

if __name__ == "__main__":
    raise SystemExit(main())
