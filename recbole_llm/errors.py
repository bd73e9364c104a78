"""User-facing errors.

Every mistake a user can make on the command line or in a data file is raised as
:class:`UserError`: ``run_benchmark.py`` and the converters print its message as a
single line and exit with status 2, instead of a traceback from inside RecBole.
"""


def exit_status(main):
    """Run a command-line ``main()``; a :class:`UserError` becomes its one line on stderr and its
    exit status (the module entry points' ``sys.exit(exit_status(main))``)."""
    import sys

    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


class UserError(Exception):
    """A problem with the user's input; the message names the file, field or option and the fix."""

    exit_code = 2
