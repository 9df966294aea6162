"""One exception type for problems the user can fix (bad paths, wrong weights,
unsupported settings). Command-line entry points print its message on one line
and exit non-zero instead of showing a traceback."""


class UserError(Exception):
    """An error with a message meant for the user (no traceback needed)."""

    exit_code = 2
