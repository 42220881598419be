"""Error texts as a report, a log line and the Prefect UI show them: one readable line.

Ray wraps a remote failure in a multi-line traceback ("ray::ResidentActor.run_stage() ...");
rich/colour loggers add ANSI codes; HTTP clients echo request headers. `one_line` keeps the
error's own message (the last "Type: message" line of a wrapped traceback), drops colour codes
and whitespace runs, redacts credentials (void_engine.redact) and bounds the length. The full
text still goes to the log.
"""
from __future__ import annotations

import re

from void_engine.redact import redact

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)|[A-Z]\w*Error): ")
MAX_LEN = 500


def one_line(error: BaseException | str | None, limit: int = MAX_LEN) -> str:
    if error is None:
        return ""
    if isinstance(error, BaseException):
        cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError keeps the original
        error = cause if isinstance(cause, BaseException) else error
        name = type(error).__name__
        text = str(error)
        if name not in ("InputError", "OutputError", "ModelLoadError") and text:
            text = f"{name}: {text}"
        elif not text:
            text = name
    else:
        text = error
    text = _ANSI.sub("", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:  # a traceback: keep the exception's own line
        own = [ln for ln in lines if _EXC_LINE.match(ln)]
        lines = [own[-1]] if own else [lines[-1]]
    text = re.sub(r"\s+", " ", " ".join(lines))
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
