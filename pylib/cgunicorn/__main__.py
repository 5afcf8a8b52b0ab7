"""``python -m cgunicorn`` and the ``cgunicorn`` console script."""
import sys


def main():
    """Run the cgunicorn command with this process's command line."""
    import cgunicorn
    from cgunicorn import _core

    argv = list(sys.argv)
    # python -m cgunicorn: argv[0] is this file's path; the program's name
    # (for --help and the process title) is what Gunicorn shows there.
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "cgunicorn"
    sys.exit(_core.main(argv, *cgunicorn._reexec_command()))


if __name__ == "__main__":
    main()
