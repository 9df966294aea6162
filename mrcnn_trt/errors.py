"""One exception type for problems the user can fix (bad paths, wrong weights,
unsupported settings), and the exit codes of every ``mrcnn-*`` command.

Command-line entry points print a :class:`UserError`'s message on one line
and exit with its ``exit_code`` instead of showing a traceback.
"""

#: Exit codes shared by every command (README, "Exit codes"). The TensorRT
#: checks of ``mrcnn-build-engine`` use 10-19 (``mrcnn_trt.engine``).
EXIT_OK = 0
EXIT_NOTHING_DONE = 1        # no input could be processed
EXIT_USER_ERROR = 2          # bad option, missing/invalid file, disk full (argparse uses 2 as well)
EXIT_MISSING_MODULE = 3      # an optional Python package is not installed
EXIT_INPUTS_SKIPPED = 4      # the work was done, but some inputs could not be read and were left out
EXIT_PEER_LOST = 5           # a multi-process run lost another rank (dead, killed, hung past the timeout)
EXIT_INTERRUPTED = 130       # Ctrl-C (SIGINT): partial results are written where a command supports it
EXIT_TERMINATED = 143        # SIGTERM (docker stop, batch preemption): handled like Ctrl-C


class UserError(Exception):
    """An error with a message meant for the user (no traceback needed)."""

    exit_code = EXIT_USER_ERROR
