"""The project's own exception: a user mistake with a message that says what to do next."""


class DistillError(Exception):
    """A user-facing error (bad recipe, missing file, unreachable endpoint).

    The CLI prints the message and exits with `exit_code`, never a traceback.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RecipeError(DistillError):
    """A recipe with one or more problems; `problems` lists each (key, message)."""

    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  - {key}: {msg}" for key, msg in problems]
        super().__init__("\n".join(lines))
