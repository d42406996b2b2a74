"""`postcall` under gevent: patch the standard library first, then run the command line as usual.

`postcall worker --pool gevent` re-executes itself through this module (see app.worker.sizing)."""

from gevent import monkey

monkey.patch_all()

from app.cli import main  # noqa: E402 - must follow the patching

if __name__ == "__main__":
    main()
