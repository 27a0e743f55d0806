"""The one exception type the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (recipe, file, data, path); the message names the culprit and what was expected."""
