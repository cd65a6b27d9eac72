"""The runbook, tested: every `sesame` command the runbook pages tell an
operator to run must be one a drill runs.

A command is its subcommand and the flags it is given: `sesame triage
/var/log/sesame/events.jsonl --since 1h --threshold-ms 250` is (triage,
{--since, --threshold-ms}). A drill's command covers a runbook command when
it is the same subcommand with at least the same flags (its values are the
drill's: its logs, its times). `sesame serve` is the service itself, not an
operator's command, and is left out."""

import os
import re
import shlex

RUNBOOK = ("docs/src/operators/detect.md", "docs/src/operators/fix.md")
NOT_OPERATOR_COMMANDS = {"serve"}
# Inline code that starts with `sesame <subcommand>`, and lines of code
# blocks that do.
INLINE = re.compile(r"`(sesame [a-z][^`]*)`")
BLOCK_LINE = re.compile(r"^\s*(sesame [a-z].*)$", re.M)
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def command(text):
    """(subcommand, frozenset of flags) of one command line."""
    text = text.split(" #", 1)[0].split("|", 1)[0]
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    flags = frozenset(w.split("=", 1)[0] for w in words[2:] if w.startswith("--"))
    return words[1], flags


def commands_in(markdown):
    """The operator commands a page tells its reader to run."""
    found = {command(m) for m in INLINE.findall(markdown)}
    for block in FENCE.findall(markdown):
        found |= {command(m) for m in BLOCK_LINE.findall(block)}
    return {c for c in found if c[0] not in NOT_OPERATOR_COMMANDS}


def runbook_commands(root):
    found = set()
    for page in RUNBOOK:
        with open(os.path.join(root, page)) as f:
            found |= {(page, c) for c in commands_in(f.read())}
    return found


def run_command(argv):
    """A command a drill ran (its argv, the binary first)."""
    return argv[1], frozenset(w.split("=", 1)[0] for w in argv[2:] if w.startswith("--"))


def not_run(documented, ran):
    """The documented commands (page, (sub, flags)) that no command a drill
    ran covers, as readable lines."""
    ran = {run_command(argv) for argv in ran}
    missing = []
    for page, (sub, flags) in sorted(documented, key=lambda c: (c[0], c[1][0], sorted(c[1][1]))):
        if not any(s == sub and flags <= f for s, f in ran):
            missing.append(f"{page}: sesame {sub} {' '.join(sorted(flags))}".rstrip())
    return missing
